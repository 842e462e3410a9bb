//! A PostgreSQL cluster of a test's own (from `KLAXON_TEST_PG_BIN`), which
//! the test may start late, stop and start again: a database outage on demand.

use std::process::Command;

/// A PostgreSQL cluster of this test's own, which it may stop and start.
pub struct OwnPostgres {
    bin: String,
    data: std::path::PathBuf,
    port: u16,
    _dir: tempfile::TempDir,
}

impl OwnPostgres {
    fn as_postgres(&self, program: &str) -> Command {
        let path = format!("{}/{program}", self.bin);
        if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", &path]);
            c
        } else {
            Command::new(path)
        }
    }

    /// A new cluster, running.
    pub fn start_new() -> OwnPostgres {
        let pg = Self::init_stopped();
        pg.start();
        pg
    }

    /// A new cluster, initialised but not started: a database that is down.
    pub fn init_stopped() -> OwnPostgres {
        let bin = std::env::var("KLAXON_TEST_PG_BIN").unwrap_or_else(|_| {
            panic!("KLAXON_TEST_PG_BIN is not set. Run the tests with tests/run.sh")
        });
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("pg");
        std::fs::create_dir(&data).expect("mkdir");
        if is_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres"])
                .arg(dir.path())
                .status()
                .expect("chown");
            assert!(status.success());
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("port");
        let pg = OwnPostgres {
            bin,
            data,
            port,
            _dir: dir,
        };
        let out = pg
            .as_postgres("initdb")
            .arg("-D")
            .arg(&pg.data)
            .args(["-U", "postgres", "--auth=trust"])
            .output()
            .expect("initdb");
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        pg
    }

    pub fn start(&self) {
        let out = self
            .as_postgres("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(["-w", "-t", "60", "-l"])
            .arg(self.data.join("log"))
            .arg("-o")
            .arg(format!(
                "-h 127.0.0.1 -p {} -k {} -c fsync=off",
                self.port,
                self.data.display()
            ))
            .arg("start")
            .output()
            .expect("pg_ctl start");
        assert!(
            out.status.success(),
            "pg_ctl start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn stop(&self) {
        let out = self
            .as_postgres("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "fast", "-w", "stop"])
            .output()
            .expect("pg_ctl stop");
        assert!(
            out.status.success(),
            "pg_ctl stop: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let _ = self
            .as_postgres("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "stop"])
            .output();
    }
}

pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}
