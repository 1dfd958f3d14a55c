//! Runner overhead: a pipeline of 5 no-op steps run by `Shutdown::run`, against awaiting the same 5
//! step futures directly, side by side in one run. Goal: under 50 microseconds of overhead per step
//! (each step is polled on the blocking pool, under a `select!` of its own).
//!
//! `cargo bench -p shutdown-core --bench runner`

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use shutdown_core::{
    Node, Pipeline, PipelineStep, Shutdown, ShutdownStep, StepContext, StepError, StepOutput,
};

struct Noop;

#[async_trait]
impl ShutdownStep for Noop {
    fn kind(&self) -> &'static str {
        "noop"
    }
    fn plan(&self) -> Vec<String> {
        Vec::new()
    }
    async fn run(&self, _ctx: StepContext) -> Result<StepOutput, StepError> {
        Ok(StepOutput::new())
    }
}

const STEPS: usize = 5;
const RUNS: usize = 2_000;
const BATCHES: usize = 7;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let steps: Vec<Arc<dyn ShutdownStep>> = (0..STEPS)
        .map(|_| Arc::new(Noop) as Arc<dyn ShutdownStep>)
        .collect();
    let (mut direct, mut runner, mut on_main) = (Vec::new(), Vec::new(), Vec::new());
    let mut pipeline = Pipeline::new(Duration::from_secs(30));
    for i in 0..STEPS {
        pipeline = pipeline.push(PipelineStep::new(Noop).name(format!("s{i}")));
    }
    for _ in 0..BATCHES {
        // Directly: the same step futures, awaited in order, with a context each.
        let start = Instant::now();
        rt.block_on(async {
            for _ in 0..RUNS {
                for s in &steps {
                    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
                    let ctx = StepContext::new("noop", Node::new(), deadline);
                    black_box(s.run(ctx).await.ok());
                }
            }
        });
        direct.push(start.elapsed() / RUNS as u32);

        // The runner on a runtime worker, as when the shutdown runs in a spawned task.
        let start = Instant::now();
        let pipeline = Arc::new(pipeline.clone());
        rt.block_on(async {
            let pipeline = pipeline.clone();
            tokio::spawn(async move {
                for _ in 0..RUNS {
                    black_box(Shutdown::new(pipeline.clone(), Node::new()).run().await);
                }
            })
            .await
            .expect("bench task");
        });
        runner.push(start.elapsed() / RUNS as u32);

        // The shutdown awaited on the thread that called `block_on` (`#[tokio::main]`'s main): the
        // supervision task goes to a worker and its report comes back across threads.
        let start = Instant::now();
        rt.block_on(async {
            for _ in 0..RUNS {
                black_box(Shutdown::new(pipeline.clone(), Node::new()).run().await);
            }
        });
        on_main.push(start.elapsed() / RUNS as u32);
    }
    let (direct, runner, on_main) = (median(direct), median(runner), median(on_main));
    let per_step = |t: Duration| t.saturating_sub(direct).as_secs_f64() * 1e6 / STEPS as f64;
    println!("runner overhead ({STEPS} no-op steps, median of {BATCHES} batches of {RUNS} runs)");
    println!(
        "  direct await of the step futures:       {:8.2} us per pipeline",
        direct.as_secs_f64() * 1e6
    );
    println!(
        "  Shutdown::run in a spawned task:        {:8.2} us per pipeline",
        runner.as_secs_f64() * 1e6
    );
    println!(
        "  Shutdown::run on the block_on thread:   {:8.2} us per pipeline",
        on_main.as_secs_f64() * 1e6
    );
    let (a, b) = (per_step(runner), per_step(on_main));
    println!(
        "  overhead per step, spawned task: {a:.2} us; ratio to the 50 us goal: {:.3} (<= 1.00 meets it)",
        a / 50.0
    );
    println!(
        "  overhead per step, block_on thread: {b:.2} us; ratio to the 50 us goal: {:.3}",
        b / 50.0
    );
}
