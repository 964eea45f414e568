//! BGR pixels (OpenCV's order) to the RGB the library analyses, in one pass.
//!
//! Frames from OpenCV (the Python bindings' `bgr=True`) come in BGR. Copied and then swapped in
//! place, a 1920x1080 frame took 1.16 ms, seven times its plain copy and 7% of a YuNet
//! analysis (the in-place swap is not vectorised). Written from one buffer into another, the
//! same loop is vectorised by the compiler when it may use AVX2, which [`pulp`] enables at run
//! time on CPUs that have it: 0.21 ms, against 0.15 ms for an RGB frame's copy
//! (`bench/python/array_input.py` through the bindings, 2026-12-07; bench/RESULTS.md, Python).

/// Writes the pixels of `bgr` (packed, 3 bytes a pixel) into `rgb` with red and blue swapped.
///
/// # Panics
/// If the two buffers differ in length or their length is not a multiple of 3 (a caller bug,
/// not bad input).
pub fn rgb_from_bgr(bgr: &[u8], rgb: &mut [u8]) {
    assert!(
        bgr.len() == rgb.len() && bgr.len().is_multiple_of(3),
        "rgb_from_bgr: {} BGR bytes cannot fill {} RGB bytes",
        bgr.len(),
        rgb.len()
    );
    #[cfg(target_arch = "x86_64")]
    if let Some(simd) = pulp::x86::V3::try_new() {
        // The same scalar loop, compiled with AVX2 enabled so that it is vectorised.
        simd.vectorize(
            #[inline(always)]
            || swap_red_blue(bgr, rgb),
        );
        return;
    }
    swap_red_blue(bgr, rgb);
}

/// The conversion, written so that the compiler can vectorise it (separate source and
/// destination, whole pixels).
#[inline(always)]
fn swap_red_blue(src: &[u8], dst: &mut [u8]) {
    for (d, s) in dst.chunks_exact_mut(3).zip(src.chunks_exact(3)) {
        d[0] = s[2];
        d[1] = s[1];
        d[2] = s[0];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn red_and_blue_are_swapped_and_green_kept_for_every_pixel() {
        // 1001 pixels: not a multiple of any vector width, so the tail is covered too.
        let bgr: Vec<u8> = (0..3003).map(|i| (i * 7 % 251) as u8).collect();
        let mut rgb = vec![0; bgr.len()];
        rgb_from_bgr(&bgr, &mut rgb);
        for (s, d) in bgr.chunks_exact(3).zip(rgb.chunks_exact(3)) {
            assert_eq!(d, [s[2], s[1], s[0]]);
        }
    }

    #[test]
    fn the_vector_pass_equals_the_scalar_one() {
        let bgr: Vec<u8> = (0..640 * 480 * 3).map(|i| (i * 13 % 255) as u8).collect();
        let (mut fast, mut plain) = (vec![0; bgr.len()], vec![0; bgr.len()]);
        rgb_from_bgr(&bgr, &mut fast);
        swap_red_blue(&bgr, &mut plain);
        assert_eq!(fast, plain);
    }

    #[test]
    #[should_panic(expected = "cannot fill")]
    fn buffers_of_different_lengths_are_a_bug() {
        rgb_from_bgr(&[1, 2, 3], &mut [0; 6]);
    }
}
