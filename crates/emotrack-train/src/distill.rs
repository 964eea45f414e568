//! Knowledge distillation: the teachers' probabilities that the training targets mix in (see
//! [`DistillConfig`]).
//!
//! Offline (the default), every teacher classifies each training image once, un-augmented and
//! flip-averaged, before the first epoch ([`teacher_targets`]). The teachers were trained on
//! those very images, so their targets are close to the labels. Online (`"online": true`,
//! [`OnlineTeachers`]), the teachers classify every batch as the student sees it, augmented
//! and mixed: "consistent teaching" (Beyer et al., *Knowledge distillation: A good teacher is
//! patient and consistent*, CVPR 2022), which gives the student the teachers' view of images
//! they never saw, at the cost of the teachers' forward passes on every batch.

use emotrack::classify::{Classifier, Normalization};
use emotrack::{Emotion, EmotionScores};
use emotrack_nn::Tensor;

use crate::config::{DistillConfig, TeacherViews};
use crate::data::{Dataset, IMAGE_PIXELS, IMAGE_SIDE};
use crate::error::TrainError;
use crate::evaluate::{Backend, load_model};
use crate::metrics::Predictor;
use crate::tta::{SUB_CROP, SUB_CROP_CORNERS, Tta, enlarge, mirror};

/// The teachers' probabilities for every training image (offline distillation).
pub type TeacherTargets = Vec<[f32; Emotion::COUNT]>;

/// The teachers of a run, as its [`DistillConfig`] asks for them.
#[derive(Debug)]
pub enum Teachers {
    /// Probabilities computed once per training image, and the teachers' share of each target.
    Offline {
        /// One row per training image.
        targets: TeacherTargets,
        /// [`DistillConfig::weight`].
        weight: f32,
    },
    /// Teachers run on every batch.
    Online(OnlineTeachers),
}

impl Teachers {
    /// Loads the teachers of `distill`; offline ones classify every image of `data` first.
    pub fn load(
        distill: &DistillConfig,
        data: &Dataset,
        student: Normalization,
    ) -> Result<Self, TrainError> {
        Ok(if distill.online {
            Teachers::Online(OnlineTeachers::load(distill, student)?)
        } else {
            Teachers::Offline {
                targets: teacher_targets(distill, data)?,
                weight: distill.weight,
            }
        })
    }
}

/// Runs the teachers of `distill` over every image of `data` (flip-averaged) and averages
/// their probabilities.
pub fn teacher_targets(
    distill: &DistillConfig,
    data: &Dataset,
) -> Result<TeacherTargets, TrainError> {
    const BATCH: usize = 256;
    let mut sum = vec![[0f32; Emotion::COUNT]; data.len()];
    for path in &distill.teachers {
        let mut teacher = load_model(path, Backend::Runtime, Tta::Flip)?;
        for (start, rows) in (0..data.len()).step_by(BATCH).zip(sum.chunks_mut(BATCH)) {
            let crops: Vec<&[u8]> = (start..start + rows.len()).map(|i| data.image(i)).collect();
            for (row, scores) in rows.iter_mut().zip(teacher.predict(&crops)) {
                for (s, p) in row.iter_mut().zip(scores.0) {
                    *s += p;
                }
            }
        }
    }
    let n = distill.teachers.len() as f32;
    for p in &mut sum {
        for v in p.iter_mut() {
            *v /= n;
        }
    }
    Ok(sum)
}

/// Teachers that classify each training batch as the student sees it.
pub struct OnlineTeachers {
    members: Vec<Classifier>,
    /// The normalisation of the student's input, which the batches come in.
    student: Normalization,
    /// The teachers' share of each target ([`DistillConfig::weight`]).
    weight: f32,
    /// The squares of each image the teachers see, each also mirrored: `(side, (x0, y0))`
    /// ([`DistillConfig::teacher_views`]).
    squares: Vec<(usize, (usize, usize))>,
}

impl std::fmt::Debug for OnlineTeachers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnlineTeachers")
            .field("members", &self.members.len())
            .field("student", &self.student)
            .field("weight", &self.weight)
            .field("squares", &self.squares)
            .finish()
    }
}

impl OnlineTeachers {
    /// Loads the teachers of `distill` into the inference runtime; `student` is the
    /// normalisation of the batches they will see.
    pub fn load(distill: &DistillConfig, student: Normalization) -> Result<Self, TrainError> {
        let members = distill
            .teachers
            .iter()
            .map(|path| {
                let model = load_model(path, Backend::Runtime, Tta::None)?;
                Ok(model.into_runtime().expect("loaded on the runtime backend"))
            })
            .collect::<Result<_, TrainError>>()?;
        Ok(Self {
            members,
            student,
            weight: distill.weight,
            squares: squares(distill.teacher_views),
        })
    }

    /// Mixes the teachers' probabilities for the batch `x` (see [`Self::probabilities`]) into
    /// its `targets` (`N x 7`, the labels' part), [`DistillConfig::weight`] to the teachers.
    pub fn blend(&self, x: &[f32], targets: &mut [f32]) {
        let weight = self.weight;
        for (t, p) in targets
            .chunks_exact_mut(Emotion::COUNT)
            .zip(self.probabilities(x))
        {
            for (v, q) in t.iter_mut().zip(p) {
                *v = (1.0 - weight) * *v + weight * q;
            }
        }
    }

    /// The teachers' mean probabilities over their views ([`DistillConfig::teacher_views`],
    /// each view also mirrored) for a batch of 48x48 images `x` normalised as the student's
    /// input (`[N, 1, 48, 48]` row-major).
    pub fn probabilities(&self, x: &[f32]) -> Vec<[f32; Emotion::COUNT]> {
        let n = x.len() / IMAGE_PIXELS;
        let mut sum = vec![[0f32; Emotion::COUNT]; n];
        let share = 1.0 / (2 * self.squares.len() * self.members.len()) as f32;
        for &(side, corner) in &self.squares {
            let square = enlarge(x, side, corner);
            for teacher in &self.members {
                // Back to pixels with the student's normalisation, then into the teacher's.
                let t = &teacher.config().normalization;
                let scale = self.student.std / t.std;
                let shift = (self.student.mean - t.mean) / t.std;
                let mut views: Vec<f32> = square.iter().map(|v| v * scale + shift).collect();
                views.extend(mirror(&views));
                let input = Tensor::from_vec([2 * n, 1, IMAGE_SIDE, IMAGE_SIDE], views);
                let logits = teacher.logits_of_tensor(&input);
                for (k, l) in logits.iter().enumerate() {
                    let p = EmotionScores::from_logits(l);
                    for (s, v) in sum[k % n].iter_mut().zip(p.0) {
                        *s += share * v;
                    }
                }
            }
        }
        sum
    }
}

/// The squares `(side, (x0, y0))` of a 48x48 image that `views` shows the teachers.
fn squares(views: TeacherViews) -> Vec<(usize, (usize, usize))> {
    match views {
        TeacherViews::Flip => vec![(IMAGE_SIDE, (0, 0))],
        TeacherViews::Zoom(side) => {
            // Validated: even, so the margin splits into whole pixels.
            let side = side as usize;
            let margin = (IMAGE_SIDE - side) / 2;
            vec![(side, (margin, margin))]
        }
        TeacherViews::TenCrop => SUB_CROP_CORNERS
            .iter()
            .map(|&(x, y)| (SUB_CROP as usize, (x as usize, y as usize)))
            .collect(),
    }
}
