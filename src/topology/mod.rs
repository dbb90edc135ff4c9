//! CPU sets and machine topology (placeholder).
