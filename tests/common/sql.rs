//! A session on a SQLite file, its statements captured, and a second
//! connection to read the rows back with plain SQL.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use relgraph::{ObjectKey, RelationshipId, Schema, Session, SqliteStore};

pub struct Db {
    pub session: Session,
    pub schema: Arc<Schema>,
    pub path: PathBuf,
    pub log: Arc<Mutex<Vec<String>>>,
    /// The file's folder, removed with the `Db`.
    _dir: tempfile::TempDir,
}

impl Db {
    pub fn new(schema: Arc<Schema>, name: &str) -> Self {
        let dir = tempfile::Builder::new().prefix("relgraph-tests-").tempdir().unwrap();
        let path = dir.path().join(format!("{name}.sqlite"));
        let session = Self::open(&schema, &path);
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut db = Db { session, schema, path, log, _dir: dir };
        db.echo();
        db
    }

    fn open(schema: &Arc<Schema>, path: &PathBuf) -> Session {
        Session::new(schema.clone(), SqliteStore::open(path).unwrap()).unwrap()
    }

    fn echo(&mut self) {
        let log = self.log.clone();
        self.session.set_echo(Some(Box::new(move |s: &str| log.lock().unwrap().push(s.to_owned()))));
    }

    /// A second session over the same file, as a new process would see it.
    pub fn reopen(&mut self) {
        self.session = Self::open(&self.schema, &self.path);
        self.echo();
    }

    /// The statements sent since the last call, without parameters, BEGIN and COMMIT.
    pub fn statements(&self) -> Vec<String> {
        let mut log = self.log.lock().unwrap();
        let out = log
            .iter()
            .map(|s| s.split(" -- ").next().unwrap().to_owned())
            .filter(|s| s != "BEGIN" && s != "COMMIT")
            .collect();
        log.clear();
        out
    }

    /// Rows of a plain SQL query, each as text.
    pub fn query(&self, sql: &str) -> Vec<String> {
        let conn = rusqlite::Connection::open(&self.path).unwrap();
        let mut stmt = conn.prepare(sql).unwrap();
        let n = stmt.column_count();
        stmt.query_map([], |row| {
            let cells: Vec<String> = (0..n)
                .map(|i| match row.get_ref(i).unwrap() {
                    rusqlite::types::ValueRef::Null => "NULL".to_owned(),
                    rusqlite::types::ValueRef::Integer(v) => v.to_string(),
                    rusqlite::types::ValueRef::Real(v) => v.to_string(),
                    rusqlite::types::ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
                    rusqlite::types::ValueRef::Blob(b) => format!("{b:?}"),
                })
                .collect();
            Ok(cells.join("|"))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect()
    }

    /// Runs SQL on a connection of its own, as another writer would.
    pub fn exec(&self, sql: &str) {
        let conn = rusqlite::Connection::open(&self.path).unwrap();
        conn.execute_batch(sql).unwrap();
    }

    pub fn new_obj(&mut self, entity: &str) -> ObjectKey {
        let entity = self.schema.entity_id(entity).unwrap();
        self.session.new_object(entity)
    }

    pub fn rel(&self, path: &str) -> RelationshipId {
        let (e, n) = path.split_once('.').unwrap();
        self.schema.relationship_by_name(e, n).unwrap()
    }

    pub fn get(&mut self, entity: &str, id: i64) -> ObjectKey {
        let entity = self.schema.entity_id(entity).unwrap();
        self.session.get(entity, &[id.into()]).unwrap().unwrap_or_else(|| panic!("row {id}"))
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
