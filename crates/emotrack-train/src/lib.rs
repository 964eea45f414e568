//! Training and evaluation of the emotion classifier. (Being written.)
