//! A login role made for one test, with a unique name, dropped when the test ends (roles are cluster-wide).

use super::{connect, server, TestDb};

/// A login role (`tailhook_test_<kind>_<random>`, no superuser, createrole
/// or createdb). When the test ends, even by failing, its sessions are
/// ended, what it owns or was granted in the test database is dropped, and
/// the role is dropped.
pub struct Role {
    pub name: String,
    db_url: String,
    admin_url: String,
}

impl Role {
    pub async fn new(db: &TestDb, kind: &str) -> Self {
        let name = format!("tailhook_test_{kind}_{:08x}", rand::random::<u32>());
        db.client().await.batch_execute(&format!("CREATE ROLE {name} LOGIN")).await.expect("create role");
        Self { name, db_url: db.url.clone(), admin_url: server().admin_url.clone() }
    }

    /// The test database's URL with this role as the user.
    pub fn url(&self) -> String {
        let (scheme, rest) = self.db_url.split_once("://").expect("a URL");
        let host = rest.split_once('@').map_or(rest, |(_, host)| host);
        format!("{scheme}://{}@{host}", self.name)
    }

    /// A connection to the test database as this role.
    pub async fn client(&self) -> tokio_postgres::Client {
        connect(&self.url()).await
    }

    pub async fn is_superuser(&self, db: &TestDb) -> bool {
        db.client()
            .await
            .query_one("SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = $1", &[&self.name])
            .await
            .unwrap()
            .get(0)
    }
}

impl Drop for Role {
    fn drop(&mut self) {
        let (name, db_url, admin_url) = (self.name.clone(), self.db_url.clone(), self.admin_url.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            rt.block_on(async {
                let db = connect(&db_url).await;
                // Its sessions first (a sidecar's pool may still be closing).
                let _ = db
                    .execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", &[&name])
                    .await;
                db.batch_execute(&format!("DROP OWNED BY {name} CASCADE")).await.ok()?;
                drop(db);
                let admin = connect(&admin_url).await;
                admin.batch_execute(&format!("DROP ROLE IF EXISTS {name}")).await.ok()
            })
        })
        .join();
    }
}
