//! A small CPU inference runtime for the convolutional nets emotrack runs (MTCNN, the emotion
//! CNN). (Being written.)
