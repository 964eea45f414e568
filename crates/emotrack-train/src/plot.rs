//! Confusion-matrix picture (PNG) with plotters.
