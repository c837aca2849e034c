//! A fresh database per test: a SQLite file in a temporary directory, or, when
//! `HOOKGATE_TEST_POSTGRES` names a PostgreSQL server (`postgres://user@host:port/db`), a new
//! database on it, dropped when the test ends.

use tokio_postgres::NoTls;

/// The PostgreSQL server the suites run against, if one is named.
pub fn postgres_url() -> Option<String> {
    std::env::var("HOOKGATE_TEST_POSTGRES")
        .ok()
        .filter(|v| !v.trim().is_empty())
}

/// Whether this run uses PostgreSQL.
pub fn on_postgres() -> bool {
    postgres_url().is_some()
}

/// A database for one test; the files or the PostgreSQL database go when it is dropped.
pub struct TestDb {
    /// What `HOOKGATE_DATABASE` is set to.
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    postgres: Option<PostgresDb>,
}

impl TestDb {
    pub async fn fresh() -> TestDb {
        match postgres_url() {
            Some(server) => {
                let db = PostgresDb::create(&server).await;
                TestDb {
                    url: db.url.clone(),
                    _dir: None,
                    postgres: Some(db),
                }
            }
            None => {
                let dir = tempfile::tempdir().expect("temp dir");
                TestDb {
                    url: dir.path().join("hookgate.db").display().to_string(),
                    _dir: Some(dir),
                    postgres: None,
                }
            }
        }
    }

    /// Another handle on the same database (for a second node); the first handle owns it.
    pub fn another_handle(&self) -> TestDb {
        TestDb {
            url: self.url.clone(),
            _dir: None,
            postgres: None,
        }
    }

    /// The SQLite file, when the test runs on SQLite.
    pub fn sqlite_path(&self) -> Option<std::path::PathBuf> {
        self.postgres.is_none().then(|| self.url.clone().into())
    }
}

struct PostgresDb {
    server: String,
    name: String,
    url: String,
}

impl PostgresDb {
    async fn create(server: &str) -> PostgresDb {
        let name = format!("hookgate_t_{}", hookgate::crypto::random_id("", 10));
        admin(server, &format!("CREATE DATABASE {name}")).await;
        let mut url = url::Url::parse(server).expect("HOOKGATE_TEST_POSTGRES is a URL");
        url.set_path(&name);
        PostgresDb {
            server: server.to_string(),
            url: url.to_string(),
            name,
        }
    }
}

impl Drop for PostgresDb {
    fn drop(&mut self) {
        let (server, sql) = (
            self.server.clone(),
            format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
        // Dropped inside the test's runtime: run the statement on a thread with its own.
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(admin(&server, &sql))
        })
        .join();
    }
}

async fn admin(server: &str, sql: &str) {
    let (client, connection) = tokio_postgres::connect(server, NoTls)
        .await
        .unwrap_or_else(|e| panic!("HOOKGATE_TEST_POSTGRES={server} does not answer: {e}"));
    let driver = tokio::spawn(connection);
    client
        .batch_execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    drop(client);
    let _ = driver.await;
}
