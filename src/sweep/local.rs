//! The local executor: `jobs` trials at once on this machine, each in a rayon pool of its
//! own (`threads` threads), all reading the one copy of the learning images. A first
//! Ctrl-C (or SIGTERM) stops every running trial at the end of its epoch, saved, and
//! starts no other.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

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
    Started(usize),
    Ended(usize, Result<Outcome>, Duration),
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
    let jobs = how.jobs.clamp(1, pending.len().max(1));
    let mut progress = Progress::new(env, order.into_iter().collect(), jobs, how.quiet);
    let mut tally = Tally::default();
    std::thread::scope(|s| -> Result<()> {
        for _ in 0..jobs {
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
                let _ = tx.send(Event::Started(i));
                let t0 = Instant::now();
                let r = pool.install(|| trial::run(env, i));
                let _ = tx.send(Event::Ended(i, r, t0.elapsed()));
            });
        }
        drop(tx);
        for e in rx {
            match e {
                Event::Started(i) => progress.started(i),
                Event::Ended(i, r, took) => progress.ended(i, r, took, &mut tally),
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
    failed: usize,
    best: Option<(usize, f64)>,
    t0: Instant,
    quiet: bool,
    /// Each trial's [`work`], until it ends.
    work_left: HashMap<usize, u128>,
    /// When each running trial started.
    running: HashMap<usize, Instant>,
    /// The work and seconds of the trials done so far: the pace of one worker.
    paced: (u128, f64),
    jobs: usize,
}

impl<'a> Progress<'a> {
    fn new(env: &'a Env<'a>, work: Vec<(u128, usize)>, jobs: usize, quiet: bool) -> Progress<'a> {
        Progress {
            env,
            total: work.len(),
            ended: 0,
            failed: 0,
            best: None,
            t0: Instant::now(),
            quiet,
            work_left: work.into_iter().map(|(w, i)| (i, w)).collect(),
            running: HashMap::new(),
            paced: (0, 0.0),
            jobs,
        }
    }

    fn started(&mut self, i: usize) {
        self.running.insert(i, Instant::now());
    }

    /// Counts trial `i`'s end and prints its line.
    fn ended(&mut self, i: usize, r: Result<Outcome>, took: Duration, tally: &mut Tally) {
        self.running.remove(&i);
        let work = self.work_left.remove(&i).unwrap_or(0);
        let name = super::trial_name(i, self.env.sweep.trials.len());
        let what = match r {
            Ok(o) if o.status == Ended::Done => {
                tally.done += 1;
                self.paced.0 += work;
                self.paced.1 += took.as_secs_f64();
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
            self.running.len(),
            self.failed,
            self.left()
        );
        self.show(&line);
    }

    /// The time left: the work of the trials not ended (less what the running ones have
    /// done) at the pace of the trials done so far, shared by the workers. Trials differ
    /// by orders of magnitude in a sweep, and the longest start first, so a count of
    /// trials would overestimate the rest many times over.
    fn left(&self) -> String {
        let rest = self.total - self.ended;
        if rest == 0 {
            return format!("{:.0}s in all", self.t0.elapsed().as_secs_f64());
        }
        let s = if self.paced.0 > 0 {
            let per_work = self.paced.1 / self.paced.0 as f64;
            let each = self.work_left.iter().map(|(i, &w)| {
                let ran = self
                    .running
                    .get(i)
                    .map_or(0.0, |t| t.elapsed().as_secs_f64());
                (w as f64 * per_work - ran).max(0.0)
            });
            let (sum, longest) = each.fold((0.0, 0.0_f64), |(s, m), x| (s + x, m.max(x)));
            (sum / self.jobs as f64).max(longest)
        } else {
            // Nothing done to take a pace from: the count of trials, as a guess.
            self.t0.elapsed().as_secs_f64() / self.ended.max(1) as f64 * rest as f64
        };
        let s = s.round() as u64;
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
