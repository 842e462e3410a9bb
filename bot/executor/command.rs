//! `kind = "command"`: an argv fixed in the catalog (`pg_isready`, `redis-cli
//! ping`, scripts the team already trusts), run without a shell.
//!
//! Settings: `argv` (placeholders may fill arguments, never the program),
//! `allow_interpreter` (see below), `timeout` (default
//! 30s; the process is killed then), `output_limit` (bytes kept, default 64 KiB),
//! `env` (the only variables besides a fixed PATH: the environment is cleared),
//! `read_only` (default false: commands need approval unless declared read-only).
//!
//! Programs that turn their arguments into commands are refused by what they
//! are, not by how they are called: shells, interpreters (Python, Perl, Ruby,
//! Node, awk …, whatever the flags) and wrappers that run another program
//! (`env`, `sudo`, `timeout`, `nice`, `xargs` …), since each walks around "no
//! shell". An action that truly needs one says so with `allow_interpreter =
//! "<why>"`; the approval request then shows the reason instead of "no shell".

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncReadExt};

use super::{Backend, Configured, Outcome, Step, Values, fill};

#[derive(Debug)]
pub struct CommandBackend;

const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Programs that run text as commands.
const SHELLS: &[&str] = &[
    "sh",
    "bash",
    "dash",
    "zsh",
    "ksh",
    "mksh",
    "fish",
    "csh",
    "tcsh",
    "ash",
    "yash",
    "rbash",
    "busybox",
    "toybox",
    "pwsh",
    "powershell",
    "eval",
    "exec",
];
/// Programs that run code given as text or in a file the argv names.
const INTERPRETERS: &[&str] = &[
    "python",
    "pythonw",
    "ipython",
    "jython",
    "pypy",
    "perl",
    "ruby",
    "jruby",
    "irb",
    "node",
    "nodejs",
    "deno",
    "bun",
    "php",
    "lua",
    "luajit",
    "tclsh",
    "wish",
    "awk",
    "gawk",
    "mawk",
    "nawk",
    "original-awk",
    "rscript",
    "r",
    "osascript",
    "jshell",
    "groovy",
    "scala",
    "gdb",
    "expect",
    "guile",
    "sbcl",
    "racket",
    "julia",
    "erl",
    "escript",
    "elixir",
    "emacs",
    "vim",
    "vi",
    "nvim",
    "ex",
    "gnuplot",
    "sed",
    "make",
    "git",
    "view",
    "rview",
    "editor",
    "sensible-editor",
    "cmake",
    "dc",
    "ed",
    "m4",
    "npx",
    "npm",
    "sqlite3",
    "psql",
    "mysql",
    "mariadb",
    "gcc",
    "cc",
    "clang",
    "tar",
    "zip",
    "rsync",
    "scp",
    "sftp",
    "apt",
    "apt-get",
    "dpkg",
];
/// Programs that run another program named in their arguments.
const WRAPPERS: &[&str] = &[
    "env",
    "sudo",
    "sudoedit",
    "doas",
    "su",
    "runuser",
    "pkexec",
    "xargs",
    "nohup",
    "timeout",
    "nice",
    "ionice",
    "chroot",
    "setsid",
    "stdbuf",
    "taskset",
    "chrt",
    "flock",
    "time",
    "watch",
    "strace",
    "ltrace",
    "valgrind",
    "unshare",
    "nsenter",
    "script",
    "parallel",
    "systemd-run",
    "systemd-cat",
    "systemd-nspawn",
    "systemd-inhibit",
    "setpriv",
    "capsh",
    "firejail",
    "bwrap",
    "numactl",
    "cgexec",
    "sg",
    "newgrp",
    "find",
    "ld",
    "ld.so",
    "setarch",
    "linux32",
    "linux64",
    "x86_64",
    "i386",
    "prlimit",
    "ssh",
    "ssh-agent",
    "start-stop-daemon",
    "run-parts",
    "coreutils",
    "less",
    "more",
    "socat",
    "unbuffer",
    "runcon",
    "schroot",
    "flatpak-spawn",
    "fakeroot",
    "faketime",
    "xvfb-run",
    "dbus-launch",
    "chpst",
    "cpulimit",
    "daemonize",
    "torsocks",
    "proxychains",
    "at",
    "batch",
    "crontab",
    "tmux",
    "screen",
    "dtach",
    "entr",
    "inotifywait",
    "pager",
    "sensible-pager",
];

/// Whether any word of `arg` (split at spaces, `=`, `,`, quotes and the like,
/// as a wrapper would split it) names a shell or an interpreter
/// (`-wrapper /bin/sh,-c,id`, `--use-compress-program=sh`, `"sh -c 'id'"`).
fn names_a_shell_or_interpreter(arg: &str) -> Option<RunsCode> {
    arg.split(|c: char| {
        c.is_whitespace()
            || matches!(
                c,
                '=' | ',' | ';' | ':' | '"' | '\'' | '(' | ')' | '|' | '&'
            )
    })
    .filter(|w| !w.is_empty() && !w.starts_with('-'))
    .find_map(|w| match runs_other_code(w) {
        Some(k @ (RunsCode::Shell | RunsCode::Interpreter)) => Some(k),
        _ => None,
    })
}

/// How a program runs code other than its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RunsCode {
    /// It runs text as commands.
    Shell,
    /// It runs code given as text or in a file.
    Interpreter,
    /// It runs another program named in its arguments.
    Wrapper,
}

impl std::fmt::Display for RunsCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RunsCode::Shell => "a shell",
            RunsCode::Interpreter => "an interpreter",
            RunsCode::Wrapper => "a program that runs other programs",
        })
    }
}

/// What a program is, when it would run text or another program.
fn runs_other_code(program: &str) -> Option<RunsCode> {
    // `python3.11` is `python`, `perl5.36` is `perl`, `/usr/bin/env` is `env`,
    // `busybox.static` is `busybox`, `python3-dbg` is `python`,
    // `ld-linux-x86-64.so.2` is `ld`.
    let name = program_name(program).to_ascii_lowercase();
    let mut candidates = vec![name.clone()];
    for sep in ['.', '-'] {
        if let Some((head, _)) = name.split_once(sep) {
            candidates.push(head.to_string());
        }
    }
    for c in candidates.clone() {
        candidates.push(
            c.trim_end_matches(|ch: char| ch.is_ascii_digit() || ch == '.')
                .to_string(),
        );
    }
    let any_in = |list: &[&str]| candidates.iter().any(|c| list.contains(&c.as_str()));
    if any_in(SHELLS) {
        Some(RunsCode::Shell)
    } else if any_in(INTERPRETERS) {
        Some(RunsCode::Interpreter)
    } else if any_in(WRAPPERS) {
        Some(RunsCode::Wrapper)
    } else {
        None
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    argv: Vec<String>,
    #[serde(default, with = "crate::time::duration_text")]
    timeout: Option<Duration>,
    #[serde(default)]
    output_limit: Option<usize>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    read_only: Option<bool>,
    /// Why this action may run a shell, an interpreter or a wrapper (shown
    /// to approvers); without it such a program is refused.
    #[serde(default)]
    allow_interpreter: Option<String>,
}

fn program_name(argv0: &str) -> &str {
    argv0.rsplit('/').next().unwrap_or(argv0)
}

/// A `command` action's settings, checked.
#[derive(Debug)]
struct Command {
    argv: Vec<String>,
    timeout: Duration,
    limit: usize,
    env: BTreeMap<String, String>,
    read_only: bool,
    /// What the program is and why the catalog allows it, when it runs other code.
    runs_code: Option<(RunsCode, String)>,
}

impl Backend for CommandBackend {
    fn kind(&self) -> &'static str {
        "command"
    }

    fn configure(
        &self,
        table: &toml::Table,
        params: &[String],
    ) -> Result<Arc<dyn Configured>, Vec<(String, String)>> {
        let s: Settings = super::settings_of(table)?;
        let mut problems = Vec::new();
        let Some(program) = s.argv.first() else {
            return Err(vec![(
                "argv".into(),
                "needs at least the program to run".into(),
            )]);
        };
        let name = program_name(program);
        if program.contains('{') {
            problems.push((
                "argv".into(),
                "the program itself cannot be a parameter".into(),
            ));
        }
        // The program, and any argument that names a shell or an
        // interpreter (`setarch x86_64 /bin/sh -c …`, `ld.so /bin/sh`): a
        // wrapper this list does not know still cannot smuggle one in.
        let kind = runs_other_code(program).or_else(|| {
            s.argv
                .iter()
                .skip(1)
                .find_map(|a| names_a_shell_or_interpreter(a))
        });
        let reason = s
            .allow_interpreter
            .as_deref()
            .map(str::trim)
            .filter(|r| !r.is_empty());
        match (kind, reason) {
            (Some(kind), None) => problems.push((
                "argv".into(),
                format!(
                    "`{name}` is {kind}: it can run anything its arguments say, which walks around \"no shell\". \
                     Run the program or script directly, or set `allow_interpreter = \"<why>\"` (approvers see it)"
                ),
            )),
            (None, Some(_)) => problems.push((
                "allow_interpreter".into(),
                format!("`{name}` is not a shell, interpreter or wrapper: leave `allow_interpreter` out"),
            )),
            _ => {}
        }
        for arg in &s.argv {
            problems.extend(super::unknown_placeholders("argv", arg, params));
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Arc::new(Command {
            timeout: s.timeout.unwrap_or(Duration::from_secs(30)),
            limit: s.output_limit.unwrap_or(64 * 1024).clamp(1024, 1024 * 1024),
            env: s.env,
            read_only: s.read_only == Some(true),
            runs_code: kind.zip(reason.map(str::to_string)),
            argv: s.argv,
        }))
    }
}

impl Configured for Command {
    fn read_only(&self) -> bool {
        self.read_only
    }

    fn prepare(&self, values: &Values) -> Result<Box<dyn Step>, String> {
        let argv = self
            .argv
            .iter()
            .map(|a| fill(a, values))
            .collect::<Result<Vec<_>, _>>()?;
        // A parameter's value may complete a word into a shell's name
        // (`/bin/{p}`): the filled argv is checked again.
        if self.runs_code.is_none()
            && let Some(kind) = argv
                .iter()
                .skip(1)
                .find_map(|a| names_a_shell_or_interpreter(a))
        {
            return Err(format!(
                "the filled arguments would start {kind}, which this action does not allow"
            ));
        }
        Ok(Box::new(CommandStep {
            timeout: self.timeout,
            limit: self.limit,
            env: self.env.clone(),
            runs_code: self.runs_code.clone(),
            argv,
        }))
    }
}

struct CommandStep {
    argv: Vec<String>,
    runs_code: Option<(RunsCode, String)>,
    timeout: Duration,
    limit: usize,
    env: BTreeMap<String, String>,
}

/// Reads a stream to the end, keeping only its last `limit` bytes.
async fn read_capped(mut r: impl AsyncRead + Unpin, limit: usize) -> (Vec<u8>, usize) {
    let mut kept: Vec<u8> = Vec::new();
    let mut total = 0usize;
    let mut buf = [0u8; 8192];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                total += n;
                kept.extend_from_slice(&buf[..n]);
                if kept.len() > 2 * limit {
                    kept.drain(..kept.len() - limit);
                }
            }
        }
    }
    if kept.len() > limit {
        kept.drain(..kept.len() - limit);
    }
    (kept, total)
}

impl Step for CommandStep {
    fn describe(&self) -> String {
        let how = match &self.runs_code {
            None => "no shell".to_string(),
            Some((kind, why)) => format!(
                "`{}` is {kind}, allowed by the catalog: {why}",
                program_name(self.argv.first().map(String::as_str).unwrap_or_default())
            ),
        };
        format!(
            "run {} ({how}; timeout {})",
            self.argv
                .iter()
                .map(|a| if a.is_empty() || a.contains(char::is_whitespace) {
                    format!("{a:?}")
                } else {
                    a.clone()
                })
                .collect::<Vec<_>>()
                .join(" "),
            humantime::format_duration(self.timeout)
        )
    }

    fn target(&self) -> String {
        self.argv.join(" ")
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }

    fn run(&self) -> Pin<Box<dyn Future<Output = Outcome> + Send + '_>> {
        Box::pin(async move {
            let started = Instant::now();
            let failed = |summary: String| Outcome {
                success: false,
                summary,
                output: String::new(),
                duration: started.elapsed(),
            };
            let Some((program, args)) = self.argv.split_first() else {
                return failed("nothing to run".into());
            };
            let mut child = match tokio::process::Command::new(program)
                .args(args)
                .env_clear()
                .env("PATH", PATH)
                .envs(&self.env)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
            {
                Ok(c) => c,
                Err(e) => return failed(format!("cannot start `{program}`: {e}")),
            };
            let (Some(out), Some(err)) = (child.stdout.take(), child.stderr.take()) else {
                return failed("cannot read the command's output".into());
            };
            let limit = self.limit;
            let reading =
                async { tokio::join!(read_capped(out, limit), read_capped(err, limit / 4)) };
            let waited = tokio::time::timeout(self.timeout, async {
                let ((stdout, total_out), (stderr, _)) = reading.await;
                (child.wait().await, stdout, stderr, total_out)
            })
            .await;
            match waited {
                Err(_) => {
                    let _ = child.start_kill();
                    let _ = child.wait().await;
                    failed(format!(
                        "timed out after {}; killed",
                        humantime::format_duration(self.timeout)
                    ))
                }
                Ok((status, stdout, stderr, total_out)) => {
                    let mut output = String::from_utf8_lossy(&stdout).into_owned();
                    if total_out > stdout.len() {
                        output = format!(
                            "… {} earlier byte(s) not kept\n{output}",
                            total_out - stdout.len()
                        );
                    }
                    if !stderr.is_empty() {
                        output.push_str(&String::from_utf8_lossy(&stderr));
                    }
                    let (success, summary) = match status {
                        Ok(s) => match s.code() {
                            Some(code) => (s.success(), format!("exit {code}")),
                            None => (false, "killed by a signal".to_string()),
                        },
                        Err(e) => (false, format!("cannot wait for the command: {e}")),
                    };
                    Outcome {
                        success,
                        summary,
                        output,
                        duration: started.elapsed(),
                    }
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configure(
        argv: &[&str],
        allow: Option<&str>,
    ) -> Result<Arc<dyn Configured>, Vec<(String, String)>> {
        let mut table = toml::Table::new();
        table.insert(
            "argv".into(),
            toml::Value::Array(
                argv.iter()
                    .map(|a| toml::Value::String(a.to_string()))
                    .collect(),
            ),
        );
        if let Some(why) = allow {
            table.insert("allow_interpreter".into(), toml::Value::String(why.into()));
        }
        CommandBackend.configure(&table, &["v".to_string()])
    }

    #[test]
    fn shells_interpreters_and_wrappers_are_refused_by_what_they_are_not_by_their_flags() {
        for argv in [
            &["/usr/bin/timeout", "5", "/bin/sh", "-c", "echo {v}"][..],
            &["perl", "-le", "print {v}"],
            &["/usr/bin/python3", "-Ic", "print(1)"],
            &["python3.11", "/opt/scripts/check.py"],
            &["/usr/bin/env", "FOO=1", "/bin/true"],
            &["nice", "-n", "10", "/bin/true"],
            &["xargs", "-0", "rm"],
            &["sudo", "-u", "postgres", "/bin/true"],
            &["awk", "BEGIN { system(\"id\") }"],
            &["/bin/BASH", "script.sh"],
            &["/lib64/ld-linux-x86-64.so.2", "/bin/sh", "-c", "id"],
            &["/usr/bin/setarch", "x86_64", "/bin/sh", "-c", "id"],
            &["/usr/bin/prlimit", "--nofile=10", "/bin/sh", "-c", "id"],
            &["/usr/bin/some-new-wrapper", "/usr/bin/python3", "x.py"],
            &["/usr/bin/sed", "-n", "1e id", "/etc/hostname"],
            &["/usr/bin/git", "-c", "alias.x=!id", "x"],
            &["/usr/bin/make", "--eval=x:;id"],
            &["busybox.static", "sh"],
            &["python3-dbg", "x.py"],
            &["/usr/bin/ssh", "db-1", "systemctl", "restart", "x"],
            &["/usr/bin/gcc", "-wrapper", "/bin/sh,-c,id", "-E", "x.c"],
            &[
                "/usr/bin/tar",
                "-cf",
                "/dev/null",
                "--checkpoint-action=exec=id",
                "/etc",
            ],
            &["/usr/bin/unknown", "--use-compress-program=sh"],
            &["/usr/bin/unknown", "sh -c 'id'"],
            &["/usr/bin/unknown", "--exec=sh"],
            &["/usr/bin/unknown", "/bin/sh\u{a0}"],
            &["/usr/bin/sqlite3", ":memory:", ".shell id"],
            &["/usr/bin/view", "/etc/hostname"],
        ] {
            let problems = configure(argv, None).expect_err("refused");
            assert!(
                problems
                    .iter()
                    .any(|(k, m)| k == "argv" && m.contains("allow_interpreter")),
                "{argv:?}: {problems:?}"
            );
        }
        assert!(configure(&["/usr/bin/pg_isready", "-h", "{v}"], None).is_ok());
        assert!(
            configure(
                &[
                    "/usr/bin/redis-cli",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    "6379",
                    "ping"
                ],
                None
            )
            .is_ok()
        );
        // A value that completes a shell's name is refused when the step is made.
        let action = configure(&["/usr/bin/unknown", "/bin/{v}"], None).expect("configured");
        let mut values = Values::new();
        values.insert("v".into(), "sh".into());
        assert!(
            action.prepare(&values).is_err(),
            "the filled argv names a shell"
        );
        values.insert("v".into(), "data".into());
        assert!(action.prepare(&values).is_ok());
    }

    #[test]
    fn an_allowed_interpreter_says_why_in_what_approvers_see() {
        let action = configure(
            &["/usr/bin/python3", "/opt/runbooks/failover.py", "{v}"],
            Some("the failover script the DBA team maintains"),
        )
        .expect("allowed with a reason");
        let mut values = Values::new();
        values.insert("v".into(), "db-1".into());
        let text = action.prepare(&values).expect("step").describe();
        assert!(
            text.contains("`python3` is an interpreter, allowed by the catalog: the failover script the DBA team maintains"),
            "{text}"
        );
        assert!(!text.contains("no shell"), "{text}");
        assert!(
            configure(&["/usr/bin/pg_isready"], Some("because")).is_err(),
            "a reason for a program that needs none is a mistake"
        );
    }
}
