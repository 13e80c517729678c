//! Scratch PostgreSQL databases named `<prefix><pid>…`, one per test or bench process: the
//! URL of a new one, and dropping those a dead (killed) earlier run left behind.

use std::path::Path;

/// Drop the databases `<prefix><pid>…` (the pid up to the next `_` or the end) whose process
/// is gone, or whose name has no pid.
pub async fn drop_stale_databases(client: &tokio_postgres::Client, prefix: &str) {
    let Ok(rows) = client
        .query(
            &format!("SELECT datname FROM pg_database WHERE datname LIKE '{prefix}%'"),
            &[],
        )
        .await
    else {
        return;
    };
    for row in rows {
        let name: String = row.get(0);
        let pid = name
            .strip_prefix(prefix)
            .and_then(|rest| rest.split('_').next())
            .and_then(|pid| pid.parse::<u32>().ok());
        let alive = pid.is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
        if !alive {
            let _ = client
                .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await;
        }
    }
}

/// `url` with its database replaced by `database`.
pub fn with_database(url: &str, database: &str) -> String {
    let (base, _) = url.rsplit_once('/').unwrap_or((url, ""));
    format!("{base}/{database}")
}
