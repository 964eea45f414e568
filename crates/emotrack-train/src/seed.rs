//! The run's random streams. Each is seeded from the run's seed, the stream's number and the
//! position it serves (epoch, batch, image), never from a shared generator, so what a step
//! sees depends neither on timing nor on where a resumed run picks up.

/// Mixes seed components into one 64-bit seed (splitmix64 finaliser over a running hash).
pub(crate) fn mix(parts: &[u64]) -> u64 {
    let mut h: u64 = 0x9E37_79B9_7F4A_7C15;
    for &p in parts {
        h ^= p
            .wrapping_add(0x9E37_79B9_7F4A_7C15)
            .wrapping_add(h << 6)
            .wrapping_add(h >> 2);
        h = (h ^ (h >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        h = (h ^ (h >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        h ^= h >> 31;
    }
    h
}

/// The order of an epoch's images: `(seed, STREAM_SHUFFLE, epoch)`.
pub(crate) const STREAM_SHUFFLE: u64 = 1;
/// One image's augmentation: `(seed, STREAM_SAMPLE, epoch, position in the epoch)`.
pub(crate) const STREAM_SAMPLE: u64 = 2;
/// One batch's mixup/CutMix: `(seed, STREAM_MIX, epoch, batch)`.
pub(crate) const STREAM_MIX: u64 = 3;
/// One step's dropout: `(seed, STREAM_DROPOUT, epoch, batch)`.
pub(crate) const STREAM_DROPOUT: u64 = 4;
/// The initial weights: `(seed, STREAM_INIT)`.
pub(crate) const STREAM_INIT: u64 = 5;
