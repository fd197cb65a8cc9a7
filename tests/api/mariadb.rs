//! A MariaDB server of the test's own (`mariadb-install-db`, `mariadbd`) on a free port of
//! 127.0.0.1 with its own socket and data in a temporary directory, stopped and removed when
//! dropped. The shared server on 3306 is never touched.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::free_port;

pub struct PrivateMariaDb {
    dir: tempfile::TempDir,
    server: Child,
    port: u16,
}

impl PrivateMariaDb {
    /// A running server whose `root` logs in from 127.0.0.1 without a password; `None` (with
    /// the reason printed) where MariaDB is not installed.
    pub fn start() -> Option<Self> {
        let Some(server_program) = ["/usr/sbin/mariadbd", "/usr/sbin/mysqld"]
            .into_iter()
            .map(PathBuf::from)
            .find(|program| program.exists())
        else {
            eprintln!(
                "skipped: needs MariaDB's server (mariadbd; Debian's mariadb-server, which .ci/run installs)"
            );
            return None;
        };
        if !has_program("mariadb-install-db") || !has_program("mariadb") {
            eprintln!(
                "skipped: needs mariadb-install-db and the mariadb client (Debian's mariadb-server)"
            );
            return None;
        }
        let dir = tempfile::tempdir().expect("temporary directory");
        let data = dir.path().join("data");
        let installed = Command::new("mariadb-install-db")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            // root@127.0.0.1 without a password, rather than root over the socket only.
            .arg("--auth-root-authentication-method=normal")
            .args(["--skip-test-db", "--skip-name-resolve"])
            .arg(format!("--user={}", current_user()))
            .output()
            .expect("run mariadb-install-db");
        assert!(
            installed.status.success(),
            "mariadb-install-db: {}{}",
            String::from_utf8_lossy(&installed.stdout),
            String::from_utf8_lossy(&installed.stderr)
        );
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("server.log")).expect("log file");
        let server = Command::new(server_program)
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!(
                "--socket={}",
                dir.path().join("mariadb.sock").display()
            ))
            .arg(format!(
                "--pid-file={}",
                dir.path().join("mariadb.pid").display()
            ))
            .arg(format!("--port={port}"))
            .arg(format!("--user={}", current_user()))
            .args([
                "--bind-address=127.0.0.1",
                "--skip-name-resolve",
                "--skip-log-bin",
                "--innodb-buffer-pool-size=32M",
                "--innodb-flush-log-at-trx-commit=0",
                // Django's own recommendation; a server's default is latin1.
                "--character-set-server=utf8mb4",
                "--collation-server=utf8mb4_general_ci",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("start mariadbd");
        let mut mariadb = Self { dir, server, port };
        mariadb.wait_until_ready();
        Some(mariadb)
    }

    /// A URL for `database` (made with [`create_database`](Self::create_database)).
    pub fn url(&self, database: &str) -> String {
        format!("mysql://root@127.0.0.1:{}/{database}", self.port)
    }

    pub fn create_database(&self, name: &str) {
        self.sql(&format!(
            "CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci"
        ));
    }

    /// Runs `sql` with the mariadb client, as root; panics with its error if it fails.
    pub fn sql(&self, sql: &str) -> String {
        let output = Command::new("mariadb")
            .arg("--no-defaults")
            .args([
                "--protocol=tcp",
                "-h",
                "127.0.0.1",
                "-u",
                "root",
                "-N",
                "-B",
            ])
            .arg(format!("--port={}", self.port))
            .args(["-e", sql])
            .output()
            .expect("run the mariadb client");
        assert!(
            output.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn wait_until_ready(&mut self) {
        let started = Instant::now();
        loop {
            let answered = Command::new("mariadb")
                .arg("--no-defaults")
                .args(["--protocol=tcp", "-h", "127.0.0.1", "-u", "root"])
                .arg(format!("--port={}", self.port))
                .args(["-e", "SELECT 1"])
                .output()
                .is_ok_and(|output| output.status.success());
            if answered {
                return;
            }
            if let Ok(Some(status)) = self.server.try_wait() {
                panic!("mariadbd exited ({status}): {}", self.log());
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "mariadbd did not answer within a minute: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }
}

impl Drop for PrivateMariaDb {
    fn drop(&mut self) {
        // SIGTERM: a clean shutdown, quick with no data worth flushing; then the directory goes.
        // SAFETY: kill has no preconditions; the pid is our own child, not yet reaped.
        unsafe {
            libc::kill(self.server.id() as libc::pid_t, libc::SIGTERM);
        }
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(20) {
            if matches!(self.server.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!("mariadbd did not stop on SIGTERM within 20 s; killing it");
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

fn has_program(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| is_file(&dir.join(name))))
}

fn is_file(path: &Path) -> bool {
    path.is_file()
}

/// mariadbd refuses to run as root unless told to; as anyone else it runs as that user.
fn current_user() -> String {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return "root".to_owned();
    }
    std::env::var("USER").unwrap_or_else(|_| "mysql".to_owned())
}
