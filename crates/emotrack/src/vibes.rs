//! Vibe check messages. (Being written.)
