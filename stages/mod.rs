//! Built-in stages: one module per stage, plus the registry.
