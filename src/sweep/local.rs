//! The local executor: `jobs` trials at once on this machine, each in a rayon pool of its
//! own (`threads` threads), all reading the one copy of the learning images. A first
//! Ctrl-C (or SIGTERM) stops every running trial at the end of its epoch, saved, and
//! starts no other.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Instant;

use anyhow::Result;

use super::trial::{self, Ended, Env, Outcome};
use crate::signals::INTERRUPTED;
use crate::trainer::Interrupted;

/// How the local executor runs.
#[derive(Clone, Copy, Debug)]
pub struct Local {
    /// Trials at once.
    pub jobs: usize,
    /// Threads of each trial's pool.
    pub threads: usize,
    /// No progress lines.
    pub quiet: bool,
}

/// How the trials this executor ran went.
#[derive(Debug, Default)]
pub struct Tally {
    pub done: usize,
    pub failed: usize,
    /// Stopped part-way by a signal, saved.
    pub stopped: Vec<usize>,
    /// Not started (a signal came first).
    pub not_started: usize,
    /// Trials it could not run (their folder's lock held by another process), with why.
    pub errors: Vec<(usize, String)>,
}

/// The default `--threads` and `--jobs`: every core busy, one trial per core when there
/// are trials enough, fewer trials with more threads each when there are not.
pub fn default_split(cores: usize, trials: usize, threads: Option<usize>) -> (usize, usize) {
    let cores = cores.max(1);
    let threads = threads.unwrap_or_else(|| (cores / trials.clamp(1, cores)).max(1));
    ((cores / threads).clamp(1, trials.max(1)), threads)
}

enum Event {
    Started,
    Ended(usize, Result<Outcome>),
}

/// A trial's work, roughly: its epochs' multiply-adds over the sets (an L-BFGS epoch
/// evaluates up to `max_iter` times). Only the order trials start in follows from it.
fn work(env: &Env, i: usize) -> u128 {
    let Ok(c) = env.sweep.config(i) else {
        return 0;
    };
    let mut widths = vec![env.learn.features() as u128];
    widths.extend(c.hidden.iter().map(|&h| h as u128));
    widths.push(crate::data::CLASSES as u128);
    let params: u128 = widths.windows(2).map(|w| w[0] * w[1]).sum();
    let evals = match c.optimizer.spec().rule {
        crate::optim::Rule::MultiEval => c.hyper.max_iter.max(1) as u128,
        _ => 1,
    };
    let rows = (c.train_set_size * 3 + c.eval_set_size) as u128;
    c.epochs as u128 * params * rows * evals
}

/// Runs the trials `pending` and says how they went. The longest start first, so the
/// workers end together instead of one finishing a long trial alone (the results do not
/// depend on the order: each trial's numbers follow from its config).
pub fn run(env: &Env, pending: &[usize], how: Local) -> Result<Tally> {
    let mut order: Vec<(u128, usize)> = pending.iter().map(|&i| (work(env, i), i)).collect();
    order.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let pending: &[usize] = &order.iter().map(|&(_, i)| i).collect::<Vec<_>>();
    let next = AtomicUsize::new(0);
    let (tx, rx) = mpsc::channel::<Event>();
    let mut progress = Progress::new(env, pending.len(), how.quiet);
    let mut tally = Tally::default();
    std::thread::scope(|s| -> Result<()> {
        for _ in 0..how.jobs.clamp(1, pending.len().max(1)) {
            let tx = tx.clone();
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(how.threads)
                .build()?;
            let next = &next;
            s.spawn(move || loop {
                if INTERRUPTED.load(Ordering::SeqCst) {
                    break;
                }
                let Some(&i) = pending.get(next.fetch_add(1, Ordering::SeqCst)) else {
                    break;
                };
                let _ = tx.send(Event::Started);
                let r = pool.install(|| trial::run(env, i));
                let _ = tx.send(Event::Ended(i, r));
            });
        }
        drop(tx);
        for e in rx {
            match e {
                Event::Started => progress.running += 1,
                Event::Ended(i, r) => {
                    progress.running -= 1;
                    progress.ended(i, r, &mut tally);
                }
            }
        }
        Ok(())
    })?;
    let taken = next.load(Ordering::SeqCst).min(pending.len());
    tally.not_started = pending.len() - taken;
    Ok(tally)
}

/// The progress lines: one per trial that ends, with the counts, the best so far and the
/// time left.
struct Progress<'a> {
    env: &'a Env<'a>,
    total: usize,
    ended: usize,
    running: usize,
    failed: usize,
    best: Option<(usize, f64)>,
    t0: Instant,
    quiet: bool,
}

impl<'a> Progress<'a> {
    fn new(env: &'a Env<'a>, total: usize, quiet: bool) -> Progress<'a> {
        Progress {
            env,
            total,
            ended: 0,
            running: 0,
            failed: 0,
            best: None,
            t0: Instant::now(),
            quiet,
        }
    }

    /// Counts trial `i`'s end and prints its line.
    fn ended(&mut self, i: usize, r: Result<Outcome>, tally: &mut Tally) {
        let name = super::trial_name(i, self.env.sweep.trials.len());
        let what = match r {
            Ok(o) if o.status == Ended::Done => {
                tally.done += 1;
                let (acc, loss) = o.scores().unwrap_or((0.0, f32::NAN));
                if self.best.is_none_or(|(_, b)| acc > b) {
                    self.best = Some((i, acc));
                }
                format!("done, eval acc {acc:.4} (loss {loss:.4})")
            }
            Ok(o) => {
                tally.failed += 1;
                self.failed += 1;
                let why = o.reason.unwrap_or_default();
                format!("failed: {}", trial::clip(&why, 120))
            }
            Err(e) if e.downcast_ref::<Interrupted>().is_some() => {
                tally.stopped.push(i);
                return self.show(&format!("{name}: stopped, saved"));
            }
            Err(e) => {
                let why = trial::clip(&format!("{e:#}"), 300);
                tally.errors.push((i, why.clone()));
                format!("not run: {why}")
            }
        };
        self.ended += 1;
        let best = self.best.map_or(String::new(), |(b, acc)| {
            let n = self.env.sweep.trials.len();
            format!("; best {acc:.4} ({})", super::trial_name(b, n))
        });
        let line = format!(
            "[{}/{}] {name} {what} | running {}, failed {}{best}; {}",
            self.ended,
            self.total,
            self.running,
            self.failed,
            self.left()
        );
        self.show(&line);
    }

    /// The time left, from this run's pace so far.
    fn left(&self) -> String {
        let rest = self.total - self.ended;
        if rest == 0 {
            return format!("{:.0}s in all", self.t0.elapsed().as_secs_f64());
        }
        let per = self.t0.elapsed().as_secs_f64() / self.ended.max(1) as f64;
        let s = (per * rest as f64).round() as u64;
        match s {
            0..=99 => format!("~{s}s left"),
            100..=5999 => format!("~{}m{:02}s left", s / 60, s % 60),
            _ => format!("~{}h{:02}m left", s / 3600, s % 3600 / 60),
        }
    }

    fn show(&self, line: &str) {
        if !self.quiet {
            eprintln!("{line}");
        }
    }
}
