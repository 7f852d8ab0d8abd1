//! Wharf's integration tests: one binary, one harness (`support`), one module per concern.

mod support;

mod smoke;
