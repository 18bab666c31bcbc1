//! Helpers shared by the workspace's examples and integration tests.
