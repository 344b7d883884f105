//! A sweep's results from what has ended: the trials ranked by eval accuracy (or eval
//! loss), never by the test set; only the best (or the top K) scored on the test images,
//! and the table says so: `results.md` and `results.csv` (the charts: [`super::charts`]).

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use serde_json::Value;

use super::plan::SweepRecord;
use super::status::State;
use super::trial_name;
use crate::config::cut;
use crate::data::{Dataset, CLASSES};

/// What trials are ranked by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    /// Eval accuracy of the best epoch, highest first (ties: lower eval loss).
    EvalAcc,
    /// Eval loss of the best epoch, lowest first (ties: higher eval accuracy).
    EvalLoss,
}

impl Metric {
    pub fn name(self) -> &'static str {
        match self {
            Metric::EvalAcc => "eval-acc",
            Metric::EvalLoss => "eval-loss",
        }
    }

    pub fn parse(s: &str) -> Result<Metric> {
        match s {
            "eval-acc" => Ok(Metric::EvalAcc),
            "eval-loss" => Ok(Metric::EvalLoss),
            _ => bail!("metric {:?}: expected eval-acc or eval-loss", cut(s)),
        }
    }
}

/// One trial's line of the results.
#[derive(Clone, Debug)]
pub struct Row {
    pub index: usize,
    pub name: String,
    pub optimizer: String,
    /// The varied keys' values, in the record's key order.
    pub settings: Vec<Value>,
    pub state: State,
    /// Test accuracy and loss of the best weights (only the top K by the metric).
    pub test: Option<(f64, f32)>,
}

impl Row {
    /// Eval accuracy and loss of a done trial's best epoch.
    pub fn scores(&self) -> Option<(f64, f32)> {
        match &self.state {
            State::Done(o) => o.scores(),
            _ => None,
        }
    }
}

/// The rows of every trial, trial 1 first.
pub fn rows(sweep: &SweepRecord, states: Vec<State>) -> Vec<Row> {
    let n = sweep.trials.len();
    (sweep.trials.iter().zip(states))
        .map(|(t, state)| Row {
            index: t.index,
            name: trial_name(t.index, n),
            optimizer: t.config["optimizer"].as_str().unwrap_or("?").to_string(),
            settings: (sweep.keys.iter())
                .map(|k| t.settings.get(&k.key).cloned().unwrap_or(Value::Null))
                .collect(),
            state,
            test: None,
        })
        .collect()
}

/// The done trials' positions in `rows`, best first by `metric` (ties: the other score,
/// then the trial number).
pub fn ranked(rows: &[Row], metric: Metric) -> Vec<usize> {
    let mut done: Vec<(usize, (f64, f32))> = (rows.iter().enumerate())
        .filter_map(|(i, r)| r.scores().map(|s| (i, s)))
        .collect();
    done.sort_by(|(i, (a, la)), (j, (b, lb))| {
        let by_acc = b.total_cmp(a);
        let by_loss = la.total_cmp(lb);
        match metric {
            Metric::EvalAcc => by_acc.then(by_loss),
            Metric::EvalLoss => by_loss.then(by_acc),
        }
        .then(i.cmp(j))
    });
    done.into_iter().map(|(i, _)| i).collect()
}

/// Scores the best weights of the first `k` ranked trials on the test set: the only
/// trials the test set ever sees, after the choice.
pub fn score_top(out: &Path, rows: &mut [Row], ranked: &[usize], k: usize, test: &Dataset) {
    for &i in ranked.iter().take(k) {
        let dir = out.join(&rows[i].name);
        let best = dir.join(crate::trainer::BEST);
        // A missing or unreadable file leaves the cell empty; the note says why.
        if let Ok(p) = crate::checkpoint::load(&best, test.features(), CLASSES) {
            let ev = crate::cpu::evaluate(&p, test);
            rows[i].test = Some((ev.stats.accuracy(), ev.stats.loss));
        }
    }
}

/// A value as a table cell: numbers as the config records them, lists and names bare.
pub fn cell(v: &Value) -> String {
    match v {
        Value::String(s) => cut(s),
        Value::Array(a) => a.iter().map(cell).collect::<Vec<_>>().join(","),
        v => cut(&v.to_string()),
    }
}

/// What the table's notes say about the ranking and the test set.
pub struct Notes<'a> {
    pub metric: Metric,
    pub test_top: usize,
    pub test_len: usize,
    pub data_dir: &'a Path,
}

/// `results.md`: the sweep, the ranked trials, then those failed and those not ended.
pub fn markdown(sweep: &SweepRecord, rows: &[Row], ranked: &[usize], n: &Notes) -> String {
    let states: Vec<State> = rows.iter().map(|r| r.state.clone()).collect();
    let mut s = format!(
        "# Sweep results\n\nSpace `{}`, {} search, seed {}, {} trials: {}.\n\n",
        sweep.space.path.display(),
        sweep.search,
        sweep.seed,
        rows.len(),
        super::status::line(&states)
    );
    s += &format!(
        "Ranked by {} of each trial's best epoch (lowest eval loss: the weights best.safetensors holds), on the eval images. The test set took no part in the choice: only the top {} by that ranking {} scored on the {} test images of {}; `-` is a trial the test set never saw.\n\n",
        match n.metric {
            Metric::EvalAcc => "eval accuracy",
            Metric::EvalLoss => "eval loss",
        },
        n.test_top,
        if n.test_top == 1 { "was" } else { "were" },
        n.test_len,
        n.data_dir.display()
    );
    let keys: Vec<&str> = sweep.keys.iter().map(|k| k.key.as_str()).collect();
    // The optimizer has a column of its own unless the space varies it.
    let own = !keys.contains(&"optimizer");
    s += &format!(
        "| rank | trial | {} |{} best epoch | eval acc | eval loss | train acc | test acc | train seconds |\n|{}\n",
        keys.join(" | "),
        if own { " optimizer |" } else { "" },
        "---|".repeat(8 + usize::from(own) + keys.len())
    );
    for (rank, &i) in ranked.iter().enumerate() {
        let r = &rows[i];
        let State::Done(o) = &r.state else { continue };
        let Some(b) = &o.best else { continue };
        let test = r.test.map_or("-".into(), |(a, _)| format!("{a:.4}"));
        let opt = if own {
            format!(" {} |", r.optimizer)
        } else {
            String::new()
        };
        s += &format!(
            "| {} | {} | {} |{opt} {} | {:.4} | {:.4} | {:.4} | {test} | {:.1} |\n",
            rank + 1,
            r.name,
            r.settings.iter().map(cell).collect::<Vec<_>>().join(" | "),
            b.epoch,
            b.eval_acc,
            b.eval_loss,
            b.train_acc,
            o.train_seconds
        );
    }
    s += &others(rows, &keys);
    s += &timing(rows);
    s
}

/// The sweep's time, from its ended trials' records: from the first start to the last end,
/// the epochs' training in their last starts, what each start cost beside its epochs
/// (setting up, the data, saves), and how many trials ran at once on average.
fn timing(rows: &[Row]) -> String {
    let ended: Vec<&super::trial::Outcome> = (rows.iter())
        .filter_map(|r| match &r.state {
            State::Done(o) | State::Failed(o) => Some(o),
            _ => None,
        })
        .collect();
    let (Some(first), Some(last)) = (
        ended.iter().map(|o| o.started_unix).min_by(f64::total_cmp),
        ended.iter().map(|o| o.finished_unix).max_by(f64::total_cmp),
    ) else {
        return String::new();
    };
    let span = (last - first).max(f64::MIN_POSITIVE);
    let runs: f64 = ended.iter().map(|o| o.finished_unix - o.started_unix).sum();
    // (overhead seconds, its share of the start's run) of each trial that trained.
    let over: Vec<(f64, f64)> = (ended.iter())
        .filter_map(|o| {
            let run = o.finished_unix - o.started_unix;
            let t = o.start_train_seconds?;
            (run > 0.0).then(|| ((run - t).max(0.0), (run - t).max(0.0) / run))
        })
        .collect();
    let train: f64 = ended.iter().filter_map(|o| o.start_train_seconds).sum();
    let mut s = format!(
        "\nTime: {} trial(s) ended over {span:.1} s (first start to last end; a resumed trial counts its last start). Their runs took {runs:.1} s in all, {train:.1} s of it training epochs; on average {:.2} ran at once.",
        ended.len(),
        runs / span
    );
    if !over.is_empty() {
        let median = |mut v: Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let sec = median(over.iter().map(|o| o.0).collect());
        let share = median(over.iter().map(|o| o.1).collect());
        let worst = over.iter().map(|o| o.1).fold(0.0, f64::max);
        s += &format!(
            " A trial's overhead beside its epochs (setting up, the data, saves): median {sec:.3} s, {:.1}% of its run (at most {:.1}%).",
            100.0 * share,
            100.0 * worst
        );
    }
    s + "\n"
}

/// The failed trials with their reasons, and the trials not ended.
fn others(rows: &[Row], keys: &[&str]) -> String {
    let mut s = String::new();
    let failed: Vec<&Row> = (rows.iter())
        .filter(|r| matches!(r.state, State::Failed(_)))
        .collect();
    if !failed.is_empty() {
        s += &format!(
            "\nFailed ({}; not ranked):\n\n| trial | {} | reason |\n|{}\n",
            failed.len(),
            keys.join(" | "),
            "---|".repeat(2 + keys.len())
        );
        for r in failed {
            let State::Failed(o) = &r.state else { continue };
            let why = o.reason.as_deref().unwrap_or("").replace('|', "\\|");
            let settings: Vec<String> = r.settings.iter().map(cell).collect();
            s += &format!("| {} | {} | {why} |\n", r.name, settings.join(" | "));
        }
    }
    let open: Vec<String> = (rows.iter())
        .filter(|r| !r.state.ended())
        .map(|r| format!("{} ({})", r.name, r.state.word()))
        .collect();
    if !open.is_empty() {
        let shown = open.iter().take(50).cloned().collect::<Vec<_>>().join(", ");
        let more = open.len().saturating_sub(50);
        s += &format!(
            "\nNot ended ({}): {shown}{}.\n",
            open.len(),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        );
    }
    s
}

/// `results.csv`: every trial, ranked ones first in rank order, then the others by number.
pub fn csv(sweep: &SweepRecord, rows: &[Row], ranked: &[usize]) -> String {
    let keys: Vec<String> = (sweep.keys.iter()).map(|k| csv_field(&k.key)).collect();
    let own = !keys.iter().any(|k| k == "optimizer");
    let mut s = format!(
        "rank,trial,status,{},{}best_epoch,eval_acc,eval_loss,train_acc,train_loss,test_acc,test_loss,train_seconds,reason\n",
        keys.join(","),
        if own { "optimizer," } else { "" }
    );
    let mut in_rank = vec![false; rows.len()];
    for &i in ranked {
        in_rank[i] = true;
    }
    let order = (ranked.iter().enumerate())
        .map(|(p, &i)| (Some(p + 1), i))
        .chain((0..rows.len()).filter(|&i| !in_rank[i]).map(|i| (None, i)));
    for (rank, i) in order {
        let r = &rows[i];
        let settings: Vec<String> = r.settings.iter().map(|v| csv_field(&cell(v))).collect();
        let (best, secs, reason) = match &r.state {
            State::Done(o) | State::Failed(o) => {
                (o.best.clone(), o.train_seconds, o.reason.clone())
            }
            _ => (None, 0.0, None),
        };
        let num = |x: Option<String>| x.unwrap_or_default();
        s += &format!(
            "{},{},{},{},{}{},{},{},{},{},{},{},{:.3},{}\n",
            rank.map_or(String::new(), |p| p.to_string()),
            r.name,
            r.state.word(),
            settings.join(","),
            if own {
                format!("{},", csv_field(&r.optimizer))
            } else {
                String::new()
            },
            num(best.as_ref().map(|b| b.epoch.to_string())),
            num(best.as_ref().map(|b| b.eval_acc.to_string())),
            num(best.as_ref().map(|b| b.eval_loss.to_string())),
            num(best.as_ref().map(|b| b.train_acc.to_string())),
            num(best.as_ref().map(|b| b.train_loss.to_string())),
            num(r.test.map(|t| t.0.to_string())),
            num(r.test.map(|t| t.1.to_string())),
            secs,
            csv_field(reason.as_deref().unwrap_or(""))
        );
    }
    s
}

/// A CSV field, quoted when it holds a comma, quote or line break.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Writes results.md and results.csv into `out`; returns the files written.
pub fn write(
    out: &Path,
    sweep: &SweepRecord,
    rows: &[Row],
    ranked: &[usize],
    notes: &Notes,
) -> Result<Vec<PathBuf>> {
    let md = out.join("results.md");
    crate::fsio::write_atomic(&md, markdown(sweep, rows, ranked, notes).as_bytes())?;
    let csv_path = out.join("results.csv");
    crate::fsio::write_atomic(&csv_path, csv(sweep, rows, ranked).as_bytes())?;
    Ok(vec![md, csv_path])
}
