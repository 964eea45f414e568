//! The one-call pipeline. (Being written.)

/// Analyzer settings.
#[derive(Debug, Clone, Default)]
pub struct AnalyzerConfig {}
/// The analyzer.
#[derive(Debug)]
pub struct Analyzer {}
/// One analysed face.
#[derive(Debug, Clone)]
pub struct AnalyzedFace {}
