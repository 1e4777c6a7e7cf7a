//! How statements are sent: cached prepared statements, or unnamed ones with their types (for PgBouncer's transaction mode).
//!
//! With `database.prepared_statements = true` (the default) each connection
//! prepares a statement once and then only binds and executes it, and
//! PostgreSQL may reuse its plan: the fan-out and result statements are
//! planned once per connection, not once per call. Named prepared statements
//! live on one server connection, so behind a transaction-mode pooler they
//! break; with `false` every statement is sent unnamed with its parameter
//! types (`query_typed`: Parse, Bind and Execute in one round trip, nothing
//! left on the server connection), parsed and planned on every call. The
//! SQL files cast every parameter (`$1::bigint`), so the types declared
//! here are the ones the server expects either way.

use super::Db;
use std::time::SystemTime;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::GenericClient as _;
use tokio_postgres::{Error, Row};

/// A Rust value with its PostgreSQL type.
pub trait PgType {
    const TYPE: Type;
}

/// An element of an array parameter.
pub trait PgElement {
    const ARRAY: Type;
}

macro_rules! pg_types {
    ($($rust:ty => $scalar:ident, $array:ident;)*) => {$(
        impl PgType for $rust {
            const TYPE: Type = Type::$scalar;
        }
        impl PgElement for $rust {
            const ARRAY: Type = Type::$array;
        }
    )*};
}

pg_types! {
    bool => BOOL, BOOL_ARRAY;
    i32 => INT4, INT4_ARRAY;
    i64 => INT8, INT8_ARRAY;
    String => TEXT, TEXT_ARRAY;
    &str => TEXT, TEXT_ARRAY;
    SystemTime => TIMESTAMPTZ, TIMESTAMPTZ_ARRAY;
    tokio_postgres::types::Timestamp<SystemTime> => TIMESTAMPTZ, TIMESTAMPTZ_ARRAY;
}

impl<T: PgType> PgType for Option<T> {
    const TYPE: Type = T::TYPE;
}

impl<T: PgElement> PgElement for Option<T> {
    const ARRAY: Type = T::ARRAY;
}

impl<T: PgElement> PgType for Vec<T> {
    const TYPE: Type = T::ARRAY;
}

impl<T: PgElement> PgType for &[T] {
    const TYPE: Type = T::ARRAY;
}

/// A parameter as a trait object: its value and its type.
pub trait Param: Sync {
    fn value(&self) -> &(dyn ToSql + Sync);
    fn pg_type(&self) -> Type;
}

impl<T: PgType + ToSql + Sync> Param for T {
    fn value(&self) -> &(dyn ToSql + Sync) {
        self
    }

    fn pg_type(&self) -> Type {
        T::TYPE
    }
}

/// The `(value, type)` pairs `query_typed` takes.
pub fn typed<'a>(params: &[&'a dyn Param]) -> Vec<(&'a (dyn ToSql + Sync), Type)> {
    params.iter().map(|p| (p.value(), p.pg_type())).collect()
}

/// A pooled connection or a transaction on one.
pub trait Conn: deadpool_postgres::GenericClient {
    type Pg: tokio_postgres::GenericClient + Sync;
    fn pg(&self) -> &Self::Pg;
}

impl Conn for deadpool_postgres::Client {
    type Pg = tokio_postgres::Client;
    fn pg(&self) -> &Self::Pg {
        self
    }
}

impl<'a> Conn for deadpool_postgres::Transaction<'a> {
    type Pg = tokio_postgres::Transaction<'a>;
    fn pg(&self) -> &Self::Pg {
        self
    }
}

impl Db {
    /// Runs `sql`, returning its rows.
    pub(super) async fn rows(&self, c: &impl Conn, sql: &str, params: &[&dyn Param]) -> Result<Vec<Row>, Error> {
        if self.prepared {
            let (values, types) = split(params);
            let statement = c.prepare_typed_cached(sql, &types).await?;
            c.query(&statement, &values).await
        } else {
            c.pg().query_typed(sql, &typed(params)).await
        }
    }

    /// Runs `sql`, which returns exactly one row.
    pub(super) async fn one(&self, c: &impl Conn, sql: &str, params: &[&dyn Param]) -> Result<Row, Error> {
        if self.prepared {
            let (values, types) = split(params);
            let statement = c.prepare_typed_cached(sql, &types).await?;
            c.query_one(&statement, &values).await
        } else {
            c.pg().query_typed_one(sql, &typed(params)).await
        }
    }

    /// Runs `sql`, returning how many rows it changed.
    pub(super) async fn exec(&self, c: &impl Conn, sql: &str, params: &[&dyn Param]) -> Result<u64, Error> {
        if self.prepared {
            let (values, types) = split(params);
            let statement = c.prepare_typed_cached(sql, &types).await?;
            c.execute(&statement, &values).await
        } else {
            c.pg().execute_typed(sql, &typed(params)).await
        }
    }

    /// `begin` (a simple-query batch that opens a transaction), `sql`, and
    /// COMMIT, pipelined: sent together, so the transaction costs one round
    /// trip instead of one per statement. tokio-postgres sends requests in the order
    /// their futures are first polled; the statement is prepared before, so
    /// that polling it sends the query at once, and `biased` polls in order.
    /// When `sql` fails, the server turns the COMMIT into a ROLLBACK.
    pub(super) async fn rows_in_one_round_trip(
        &self,
        c: &deadpool_postgres::Client,
        begin: &str,
        sql: &str,
        params: &[&dyn Param],
    ) -> Result<Vec<Row>, Error> {
        let (values, types) = split(params);
        let statement = if self.prepared { Some(c.prepare_typed_cached(sql, &types).await?) } else { None };
        let typed_params = typed(params);
        let query = async {
            match &statement {
                Some(statement) => c.query(statement, &values).await,
                None => c.query_typed(sql, &typed_params).await,
            }
        };
        let (began, rows, committed) = tokio::join!(biased; c.batch_execute(begin), query, c.batch_execute("COMMIT"));
        began?;
        let rows = rows?;
        committed?;
        Ok(rows)
    }
}

fn split<'a>(params: &[&'a dyn Param]) -> (Vec<&'a (dyn ToSql + Sync)>, Vec<Type>) {
    params.iter().map(|p| (p.value(), p.pg_type())).unzip()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_follow_the_rust_types() {
        let (a, b, c, d): (i64, Option<String>, Vec<Option<i32>>, &[i64]) = (1, None, vec![Some(1)], &[2]);
        let e: Vec<&str> = vec!["x"];
        let f: Option<Vec<i64>> = None;
        let got: Vec<Type> = typed(&[&a, &b, &c, &d, &e, &f, &true]).into_iter().map(|(_, t)| t).collect();
        assert_eq!(
            got,
            [
                Type::INT8,
                Type::TEXT,
                Type::INT4_ARRAY,
                Type::INT8_ARRAY,
                Type::TEXT_ARRAY,
                Type::INT8_ARRAY,
                Type::BOOL
            ]
        );
    }
}
