//! Known-answer tests of the analytics engine.
