pub mod fake_upstream;
