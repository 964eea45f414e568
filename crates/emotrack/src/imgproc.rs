//! Image operations. (Being written.)
