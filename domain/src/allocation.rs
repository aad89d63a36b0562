//! Best-available seat allocation.
//!
//! Picks `quantity` adjacent seats in one row. Preference, in order:
//! 1. no single free seat is left stranded next to the block (an "orphan",
//!    which nobody buying two or more can use) whenever another choice exists;
//! 2. the best row (rows are listed best first);
//! 3. the block closest to the middle of the row.

/// Where a block of seats goes: row index within the section and the index of
/// its first seat within the row (both 0-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    pub row: usize,
    pub first_seat: usize,
}

/// Whether placing `quantity` seats at `first` in a free run `[run_start,
/// run_end)` strands a single free seat on either side.
fn strands_orphan(run_start: usize, run_end: usize, first: usize, quantity: usize) -> bool {
    first - run_start == 1 || run_end - (first + quantity) == 1
}

/// Chooses seats for a best-available request. `rows[r][s]` is true when seat
/// `s` of row `r` is free. Returns `None` when no row has `quantity` adjacent
/// free seats.
pub fn best_available(rows: &[Vec<bool>], quantity: usize) -> Option<Placement> {
    if quantity == 0 {
        return None;
    }
    let mut best: Option<((bool, usize, usize), Placement)> = None;
    for (r, seats) in rows.iter().enumerate() {
        let len = seats.len();
        let mut s = 0;
        while s < len {
            if !seats[s] {
                s += 1;
                continue;
            }
            let run_start = s;
            while s < len && seats[s] {
                s += 1;
            }
            let run_end = s;
            if run_end - run_start < quantity {
                continue;
            }
            for first in run_start..=run_end - quantity {
                let centre_distance = (2 * first + quantity).abs_diff(len);
                let key = (
                    strands_orphan(run_start, run_end, first, quantity),
                    r,
                    centre_distance,
                );
                if best.as_ref().is_none_or(|(k, _)| key < *k) {
                    best = Some((
                        key,
                        Placement {
                            row: r,
                            first_seat: first,
                        },
                    ));
                }
            }
        }
    }
    best.map(|(_, p)| p)
}

/// Whether taking seats `[first, first + quantity)` of a row strands a single
/// free seat next to the block.
pub fn leaves_orphan(row: &[bool], first: usize, quantity: usize) -> bool {
    let mut run_start = first;
    while run_start > 0 && row[run_start - 1] {
        run_start -= 1;
    }
    let mut run_end = first + quantity;
    while run_end < row.len() && row[run_end] {
        run_end += 1;
    }
    strands_orphan(run_start, run_end, first, quantity)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn row(pattern: &str) -> Vec<bool> {
        pattern.chars().map(|c| c == '.').collect()
    }

    #[test]
    fn picks_the_middle_of_the_best_row() {
        let rows = vec![row(".........."), row("..........")];
        assert_eq!(
            best_available(&rows, 2),
            Some(Placement {
                row: 0,
                first_seat: 4
            })
        );
    }

    #[test]
    fn skips_a_row_that_is_too_full() {
        let rows = vec![row("xx.x.x.xxx"), row("....xxxxxx")];
        assert_eq!(
            best_available(&rows, 2),
            Some(Placement {
                row: 1,
                first_seat: 2
            })
        );
    }

    #[test]
    fn avoids_stranding_a_single_seat_even_in_a_worse_row() {
        // Row 0 has a run of exactly 3: taking 2 always strands one.
        let rows = vec![row("xxx...xxxx"), row("xx....xxxx")];
        assert_eq!(
            best_available(&rows, 2),
            Some(Placement {
                row: 1,
                first_seat: 4
            })
        );
    }

    #[test]
    fn strands_a_seat_only_when_nothing_else_exists() {
        let rows = vec![row("xxx...xxxx")];
        let p = best_available(&rows, 2).unwrap();
        assert_eq!(p.row, 0);
        assert!(leaves_orphan(&rows[0], p.first_seat, 2));
    }

    #[test]
    fn nothing_when_no_row_has_room() {
        let rows = vec![row(".x.x.x"), row("xxxxxx")];
        assert_eq!(best_available(&rows, 2), None);
        assert_eq!(best_available(&rows, 0), None);
    }

    proptest! {
        #[test]
        fn placement_is_free_adjacent_and_orphan_free_when_possible(
            rows in prop::collection::vec(prop::collection::vec(any::<bool>(), 1..24), 1..6),
            quantity in 1usize..6,
        ) {
            match best_available(&rows, quantity) {
                Some(p) => {
                    let r = &rows[p.row];
                    prop_assert!(p.first_seat + quantity <= r.len());
                    prop_assert!(r[p.first_seat..p.first_seat + quantity].iter().all(|f| *f));
                    if leaves_orphan(r, p.first_seat, quantity) {
                        // Then every possible placement strands an orphan.
                        for (ri, row) in rows.iter().enumerate() {
                            for first in 0..=row.len().saturating_sub(quantity) {
                                if first + quantity <= row.len()
                                    && row[first..first + quantity].iter().all(|f| *f)
                                {
                                    prop_assert!(leaves_orphan(row, first, quantity),
                                        "row {ri} seat {first} was orphan-free");
                                }
                            }
                        }
                    }
                }
                None => {
                    for row in &rows {
                        let longest = row.split(|f| !*f).map(<[bool]>::len).max().unwrap_or(0);
                        prop_assert!(longest < quantity);
                    }
                }
            }
        }
    }
}
