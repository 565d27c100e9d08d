//! The worker's integration tests, as one binary (one link on CI's two cores). Real Redis and
//! a real S3 server come from `scripts/test.sh`; Supabase and the callback endpoint are stubs
//! that enforce the real rules (`../support`).

#[path = "../support/mod.rs"]
mod support;

mod control;
mod end_to_end;
mod endpoints;
mod exactly_once;
mod harness;
mod job_control;
mod malformed;
mod outages;
mod queues;
mod s3;
mod shutdown;
mod wire;
