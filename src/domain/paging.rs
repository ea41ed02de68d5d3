//! Keyset pages: a page is read with one row more than its limit, so the
//! extra row says whether another page follows.

/// Cuts `rows` (read with `limit + 1`) back to `limit`; the last row kept
/// when more follow (the next page's cursor), `None` on the last page.
pub fn trim<T>(rows: &mut Vec<T>, limit: i64) -> Option<&T> {
    let more = usize::try_from(limit).is_ok_and(|l| rows.len() > l);
    if !more {
        return None;
    }
    rows.pop();
    rows.last()
}

#[cfg(test)]
mod tests {
    use super::trim;

    #[test]
    fn the_extra_row_goes_and_names_the_cursor() {
        let mut rows = vec![1, 2, 3];
        assert_eq!(trim(&mut rows, 2), Some(&2));
        assert_eq!(rows, [1, 2]);
        let mut last_page = vec![1, 2];
        assert_eq!(trim(&mut last_page, 2), None);
        assert_eq!(last_page, [1, 2]);
    }
}
