//! The batch script: its `#SBATCH` lines, the array of trial indices, quoting that bash and
//! sbatch read back as written, the values refused (one line naming the option), the time
//! limit's formats, and `write_script`.

use std::path::{Path, PathBuf};
use std::process::Command;

use rprop_lab::slurm::{format_time, parse_time, render, write_script, SbatchOptions};

use super::support::{array, options, AWKWARD};

pub const TESTS: &[(&str, fn())] = &[
    (
        "render::every_option_reaches_its_sbatch_line",
        every_option_reaches_its_sbatch_line,
    ),
    (
        "render::defaults_give_the_fixed_lines_only",
        defaults_give_the_fixed_lines_only,
    ),
    (
        "render::indices_become_ranges_and_lists",
        indices_become_ranges_and_lists,
    ),
    (
        "render::awkward_paths_come_back_as_written",
        awkward_paths_come_back_as_written,
    ),
    (
        "render::bad_values_are_one_line_naming_the_option",
        bad_values_are_one_line_naming_the_option,
    ),
    (
        "render::time_limits_parse_and_print",
        time_limits_parse_and_print,
    ),
    (
        "render::write_script_creates_the_log_folder",
        write_script_creates_the_log_folder,
    ),
];

fn full_options() -> SbatchOptions {
    SbatchOptions {
        job_name: "sweep one".into(),
        partition: Some("gpu".into()),
        account: Some("lab-7".into()),
        time_limit_s: Some(9000),
        gpu_gres: Some("gpu:a100:1".into()),
        throttle: Some(4),
        cpus_per_task: Some(8),
        signal_lead_s: 600,
        log_dir: "/shared/runs/s 1/logs".into(),
    }
}

fn every_option_reaches_its_sbatch_line() {
    let indices: Vec<usize> = (1..=12).collect();
    let bin = Path::new("/opt/rprop-lab/bin/rprop-lab");
    let out = Path::new("/shared/runs/s 1");
    let script = render(&full_options(), &array(bin, out, &indices)).unwrap();
    let head: Vec<&str> = script.lines().take_while(|l| !l.is_empty()).collect();
    assert_eq!(
        head,
        [
            "#!/bin/bash",
            "#SBATCH --job-name=\"sweep one\"",
            "#SBATCH --array=1-12%4",
            "#SBATCH --output=\"/shared/runs/s 1/logs/trial-%3a.log\"",
            "#SBATCH --open-mode=append",
            "#SBATCH --requeue",
            "#SBATCH --signal=B:USR1@600",
            "#SBATCH --partition=\"gpu\"",
            "#SBATCH --account=\"lab-7\"",
            "#SBATCH --gres=\"gpu:a100:1\"",
            "#SBATCH --time=2:30:00",
            "#SBATCH --cpus-per-task=8",
        ]
    );
    for line in [
        "RPROP_LAB='/opt/rprop-lab/bin/rprop-lab'",
        "OUT='/shared/runs/s 1'",
        "STOPPED=130",
        "trial=$((SLURM_ARRAY_TASK_ID + 0))",
        "\"$RPROP_LAB\" sweep run-trial \"$OUT\" --index \"$trial\" &",
        "  scontrol requeue \"$task\" && exit \"$status\"",
    ] {
        assert!(
            script.lines().any(|l| l == line),
            "no line {line:?} in:\n{script}"
        );
    }
    // sbatch reads #SBATCH lines only up to the first command.
    let first_command = script
        .lines()
        .position(|l| !l.starts_with('#') && !l.is_empty());
    let lines: Vec<&str> = script.lines().collect();
    let last_sbatch = lines.iter().rposition(|l| l.starts_with("#SBATCH"));
    assert!(last_sbatch < first_command);
    let syntax = Command::new("bash")
        .args(["-n", "-c", &script])
        .output()
        .unwrap();
    assert!(
        syntax.status.success(),
        "bash -n: {}",
        String::from_utf8_lossy(&syntax.stderr)
    );
}

fn defaults_give_the_fixed_lines_only() {
    let opts = SbatchOptions::new("/l".into());
    let script = render(&opts, &array(Path::new("/b"), Path::new("/o"), &[3])).unwrap();
    let sbatch: Vec<&str> = script
        .lines()
        .filter(|l| l.starts_with("#SBATCH"))
        .collect();
    assert_eq!(
        sbatch,
        [
            "#SBATCH --job-name=\"rprop-lab-sweep\"",
            "#SBATCH --array=3",
            "#SBATCH --output=\"/l/trial-%3a.log\"",
            "#SBATCH --open-mode=append",
            "#SBATCH --requeue",
            "#SBATCH --signal=B:USR1@300",
        ]
    );
}

fn array_line(indices: &[usize], throttle: Option<u32>, digits: usize) -> (String, String) {
    let opts = SbatchOptions {
        throttle,
        ..SbatchOptions::new("/l/".into())
    };
    let a = rprop_lab::slurm::TrialArray {
        digits,
        ..array(Path::new("/b"), Path::new("/o"), indices)
    };
    let script = render(&opts, &a).unwrap();
    let find = |key: &str| {
        let line = script.lines().find(|l| l.starts_with(key)).unwrap();
        line[key.len()..].to_string()
    };
    (find("#SBATCH --array="), find("#SBATCH --output="))
}

fn indices_become_ranges_and_lists() {
    assert_eq!(array_line(&[1, 2, 3, 4, 5, 6], Some(2), 3).0, "1-6%2");
    // A resume runs only some: runs of three or more become ranges.
    assert_eq!(array_line(&[2, 5, 6], Some(2), 3).0, "2,5,6%2");
    assert_eq!(
        array_line(&[1, 2, 3, 7, 9, 10, 11, 12], None, 3).0,
        "1-3,7,9-12"
    );
    // Order and repeats do not matter.
    assert_eq!(array_line(&[6, 1, 2, 2], None, 3).0, "1,2,6");
    // The logs are named as the trial folders: 4 digits past 999 trials.
    assert_eq!(array_line(&[999, 1000], None, 4).1, "\"/l/trial-%4a.log\"");
    // Past Slurm's default largest index (1000), arrays of a thousand, offset.
    let bad = rprop_lab::slurm::TrialArray {
        digits: 4,
        ..array(Path::new("/b"), Path::new("/o"), &[1001])
    };
    let err = render(&SbatchOptions::new("/l".into()), &bad).unwrap_err();
    assert_eq!(
        err.to_string(),
        "array: trial 1001 is not within 0..=1000 of offset 0"
    );
    let offset = rprop_lab::slurm::TrialArray {
        digits: 5,
        offset: 12_000,
        ..array(Path::new("/b"), Path::new("/o"), &[12_000, 12_001, 12_999])
    };
    let script = render(&SbatchOptions::new("/l".into()), &offset).unwrap();
    assert!(script.contains("#SBATCH --array=0,1,999\n"), "{script}");
    assert!(
        script.contains("#SBATCH --output=\"/l/trial-12%3a.log\"\n"),
        "{script}"
    );
    assert!(
        script.contains("\ntrial=$((SLURM_ARRAY_TASK_ID + 12000))\n"),
        "{script}"
    );
    use rprop_lab::slurm::split_arrays;
    assert_eq!(split_arrays(&[3, 1, 1000], 1000), [(0, vec![1, 3, 1000])]);
    assert_eq!(
        split_arrays(&[1, 999, 1000, 2500], 3000),
        [(0, vec![1, 999]), (1000, vec![1000]), (2000, vec![2500])]
    );
}

/// Runs `lines` in bash and returns what `printf '%s\n'` of each of `vars` prints.
fn bash_values(lines: &str, vars: &[&str]) -> String {
    let print: Vec<String> = vars
        .iter()
        .map(|v| format!("printf '%s\\n' \"${v}\""))
        .collect();
    let out = Command::new("bash")
        .args(["-c", &format!("{lines}\n{}", print.join("\n"))])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn awkward_paths_come_back_as_written() {
    let base = PathBuf::from("/tmp").join(AWKWARD);
    let (bin, out) = (base.join("bin"), base.join("it's out"));
    let opts = options(&base.join("logs"));
    let script = render(&opts, &array(&bin, &out, &[1])).unwrap();
    let assignments: String = script
        .lines()
        .filter(|l| l.starts_with("RPROP_LAB=") || l.starts_with("OUT="))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(
        bash_values(&assignments, &["RPROP_LAB", "OUT"]),
        format!("{}\n{}\n", bin.display(), out.display())
    );
    // For sbatch: double quotes, `"` escaped, `%` doubled (Slurm's file name patterns).
    let output = script
        .lines()
        .find(|l| l.starts_with("#SBATCH --output="))
        .unwrap();
    assert_eq!(
        output,
        "#SBATCH --output=\"/tmp/a sweep \\\"q\\\" $HOME #1 it's 100%%/logs/trial-%3a.log\""
    );
    let name = script
        .lines()
        .find(|l| l.starts_with("#SBATCH --job-name="))
        .unwrap();
    assert_eq!(name, "#SBATCH --job-name=\"rprop-lab test\"");
}

type Change = fn(&mut SbatchOptions, &mut Vec<PathBuf>, &mut Vec<usize>);

fn bad_values_are_one_line_naming_the_option() {
    use std::os::unix::ffi::OsStrExt;
    let cases: &[(Change, &str)] = &[
        (
            |o, _, _| o.partition = Some("gpu\nhi".into()),
            "partition: \"gpu\\nhi\" holds the control character '\\n'",
        ),
        (
            |o, _, _| o.account = Some("lab 7".into()),
            "account: \"lab 7\" holds white space",
        ),
        (|o, _, _| o.job_name = String::new(), "job name: empty"),
        (|o, _, _| o.job_name = "x".repeat(201), "job name: "),
        (
            |o, _, _| o.gpu_gres = Some("gpu:1\\".into()),
            "GPU gres: \"gpu:1\\\\\" holds a backslash",
        ),
        (
            |o, _, _| o.log_dir = "logs".into(),
            "log folder: logs is not an absolute path",
        ),
        (
            |o, _, _| o.log_dir = "/x/a\\b".into(),
            "log folder: /x/a\\b: a backslash",
        ),
        (
            |_, p, _| p[0] = "bin/rprop-lab".into(),
            "rprop-lab binary: bin/rprop-lab is not an absolute path",
        ),
        (
            |_, p, _| p[1] = "/x/a\nb".into(),
            "sweep folder: \"/x/a\\nb\" holds the control character '\\n'",
        ),
        (
            |_, p, _| p[1] = PathBuf::from(std::ffi::OsStr::from_bytes(b"/x/\xff")),
            "sweep folder: /x/\u{fffd} is not UTF-8",
        ),
        (|_, _, i| i.clear(), "array: no trial to run"),
        (|_, _, i| *i = vec![0, 1], "array: trial index 0"),
        (|o, _, _| o.throttle = Some(0), "throttle: 0"),
        (|o, _, _| o.cpus_per_task = Some(0), "cpus per task: 0"),
        (
            |o, _, _| o.signal_lead_s = 0,
            "signal lead: 0 s (must be 1 to 65535 s)",
        ),
        (|o, _, _| o.signal_lead_s = 65_536, "signal lead: 65536 s"),
        (
            |o, _, _| o.time_limit_s = Some(600),
            "signal lead: 600 s is not shorter than the time limit (0:10:00)",
        ),
    ];
    for (change, want) in cases {
        let mut opts = full_options();
        let mut paths = vec![PathBuf::from("/b/rprop-lab"), PathBuf::from("/o")];
        let mut indices = vec![1, 2];
        change(&mut opts, &mut paths, &mut indices);
        let a = array(&paths[0], &paths[1], &indices);
        let err = render(&opts, &a).expect_err(want).to_string();
        assert!(
            err.starts_with(want),
            "{err:?} does not start with {want:?}"
        );
        assert!(!err.contains('\n'), "not one line: {err:?}");
        assert!(err.len() < 300, "{err:?}");
    }
    // Slurm rounds a limit up to whole minutes: a 59 s lead fits a 1 s limit.
    let opts = SbatchOptions {
        time_limit_s: Some(1),
        signal_lead_s: 59,
        ..full_options()
    };
    let script = render(&opts, &array(Path::new("/b"), Path::new("/o"), &[1])).unwrap();
    assert!(script.contains("#SBATCH --time=0:00:01\n"));
}

fn time_limits_parse_and_print() {
    for (text, secs) in [
        ("90", 5400),
        ("90:30", 5430),
        ("2:30:00", 9000),
        ("1-0", 86_400),
        ("1-2:30", 95_400),
        ("1-02:30:15", 95_415),
    ] {
        assert_eq!(parse_time(text).unwrap(), secs, "{text}");
    }
    for text in [
        "",
        "abc",
        "1:2:3:4",
        "-5",
        "1-",
        "UNLIMITED",
        "1.5",
        "1-2:3:4:5",
        "9999999999",
    ] {
        let err = parse_time(text).unwrap_err().to_string();
        assert!(err.starts_with("time limit: "), "{text}: {err}");
    }
    assert!(parse_time("0").unwrap_err().to_string().contains("is zero"));
    assert_eq!(format_time(9000), "2:30:00");
    assert_eq!(format_time(95_415), "1-02:30:15");
    assert_eq!(format_time(59), "0:00:59");
    for secs in [1, 59, 3600, 86_399, 86_400, 1_000_000] {
        assert_eq!(parse_time(&format_time(secs)).unwrap(), secs);
    }
}

fn write_script_creates_the_log_folder() {
    let d = tempfile::tempdir().unwrap();
    let logs = d.path().join("slurm logs");
    let path = d.path().join("sweep.sbatch");
    let (bin, out) = (d.path().join("b"), d.path().join("o"));
    write_script(&options(&logs), &array(&bin, &out, &[1, 2]), &path).unwrap();
    assert!(logs.is_dir());
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        text,
        render(&options(&logs), &array(&bin, &out, &[1, 2])).unwrap()
    );
    // A refused value writes nothing.
    let (logs2, path2) = (d.path().join("l2"), d.path().join("s2"));
    let bad = SbatchOptions {
        partition: Some("a\nb".into()),
        ..options(&logs2)
    };
    assert!(write_script(&bad, &array(&bin, &out, &[1]), &path2).is_err());
    assert!(!logs2.exists() && !path2.exists());
}
