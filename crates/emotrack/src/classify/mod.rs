//! Emotion classification. (Being written.)
