//! Multi-row `INSERT`s: how many rows go in one statement.
//!
//! Statements come in a few shapes (64, 32, 16, 8, 4, 2 or 1 rows) so each stays in the
//! connection's prepared statement cache. At most 64 rows of at most 14 columns (896
//! values) keeps a statement under SQLite's oldest limit of 999 bind variables.
//!
//! On PostgreSQL a statement is also kept to about [`PG_MESSAGE_BUDGET`] bytes of values
//! (a single row may exceed it): sqlx 0.9.0 does not set `TCP_NODELAY`, and a message
//! larger than the socket's send buffer then waits for a delayed ACK (about 40 ms)
//! before its tail is sent.

use crate::url::Backend;

/// Row counts a statement may have, largest first.
const SHAPES: [usize; 7] = [64, 32, 16, 8, 4, 2, 1];

/// Most bytes of values in one statement on PostgreSQL: well under the 16 KiB initial
/// TCP send buffer.
pub(crate) const PG_MESSAGE_BUDGET: usize = 8 * 1024;

/// Bytes a bind value adds besides its content (length prefix and format code).
pub(crate) const VALUE_OVERHEAD: usize = 6;

/// The byte budget of one statement on `backend`.
pub(crate) fn budget(backend: Backend) -> usize {
    match backend {
        Backend::Postgres => PG_MESSAGE_BUDGET,
        Backend::Sqlite => usize::MAX,
    }
}

/// How many of the leading `rows` go in the next statement: the largest shape that
/// fits in `budget` bytes (`size` gives a row's bytes), and at least one row.
pub(crate) fn chunk_len<T>(rows: &[T], budget: usize, size: impl Fn(&T) -> usize) -> usize {
    SHAPES
        .into_iter()
        .find(|&n| {
            rows.get(..n)
                .is_some_and(|head| n == 1 || head.iter().map(&size).sum::<usize>() <= budget)
        })
        .unwrap_or(rows.len().min(1))
}

/// `(` `$1, ..., $cols` `), (` ... `)` for `rows` rows of `cols` values.
pub(crate) fn values_clause(rows: usize, cols: usize) -> String {
    let mut sql = String::with_capacity(rows * cols * 5);
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for col in 0..cols {
            if col > 0 {
                sql.push_str(", ");
            }
            sql.push('$');
            sql.push_str(&(row * cols + col + 1).to_string());
        }
        sql.push(')');
    }
    sql
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_take_the_largest_shape_that_fits() {
        let rows = vec![100usize; 100];
        assert_eq!(chunk_len(&rows, usize::MAX, |r| *r), 64);
        assert_eq!(chunk_len(&rows[..63], usize::MAX, |r| *r), 32);
        assert_eq!(chunk_len(&rows[..3], usize::MAX, |r| *r), 2);
        assert_eq!(chunk_len(&rows[..1], usize::MAX, |r| *r), 1);
        assert_eq!(chunk_len(&rows, 1_000, |r| *r), 8);
        // A row larger than the budget goes alone.
        assert_eq!(chunk_len(&[100_000usize, 1], 1_000, |r| *r), 1);
        assert_eq!(chunk_len::<usize>(&[], 1_000, |r| *r), 0);
    }

    #[test]
    fn values_are_numbered_row_by_row() {
        assert_eq!(values_clause(1, 2), "($1, $2)");
        assert_eq!(values_clause(2, 3), "($1, $2, $3), ($4, $5, $6)");
    }
}
