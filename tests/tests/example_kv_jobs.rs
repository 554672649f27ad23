//! The key-value store and job queue example (crates/noex-remote/examples/kv_jobs.rs) runs its whole story: the
//! store called from the other node, expiry, a remotely spawned worker, and jobs done across a store crash.

#[allow(dead_code)]
#[path = "../../crates/noex-remote/examples/kv_jobs.rs"]
mod kv_jobs;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_and_queue_example_does_every_job_across_a_store_crash() {
    // The store's crash is a panic: with RUST_BACKTRACE set, the default hook symbolizes a backtrace on a runtime
    // thread, which on a busy machine takes longer than the example's 5 s wait for the jobs. The message is enough.
    std::panic::set_hook(Box::new(|info| {
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "{info}");
    }));
    let results = tokio::time::timeout(std::time::Duration::from_secs(30), kv_jobs::run())
        .await
        .expect("the example finishes")
        .expect("the example succeeds");
    // Job n squares n + 1; jobs 4 and 5 were done after the store's restart, into the new store.
    assert_eq!(results, ["4", "9", "16", "25", "36"]);
}
