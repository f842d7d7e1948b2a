//! Which examples go through one forward/backward pass together. By count (`batch_size`, in
//! input order), or under a token budget: sorted by length so a batch pads little, each batch
//! at most `max_tokens` padded tokens (a longer example goes alone). Either way the store keeps
//! the rows in input order: the caller puts each example's row back at its index.

/// Batches of indices into `lens` (the examples' token counts).
pub fn batches(lens: &[usize], batch_size: usize, max_tokens: Option<usize>) -> Vec<Vec<usize>> {
    let Some(budget) = max_tokens else {
        let all: Vec<usize> = (0..lens.len()).collect();
        return all.chunks(batch_size.max(1)).map(<[usize]>::to_vec).collect();
    };
    let mut order: Vec<usize> = (0..lens.len()).collect();
    order.sort_by_key(|&i| (lens[i], i));
    let mut out: Vec<Vec<usize>> = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    for i in order {
        // Sorted ascending, so the newcomer is the longest: the batch pads to its length.
        if !current.is_empty() && (current.len() + 1) * lens[i] > budget {
            out.push(std::mem::take(&mut current));
        }
        current.push(i);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Padded tokens over real tokens of `batches` (1.0 = no padding).
    fn padding_ratio(lens: &[usize], batches: &[Vec<usize>]) -> f64 {
        let real: usize = lens.iter().sum();
        let padded: usize = batches.iter().map(|b| b.len() * b.iter().map(|&i| lens[i]).max().unwrap_or(0)).sum();
        padded as f64 / real.max(1) as f64
    }

    #[test]
    fn by_count_keeps_input_order() {
        assert_eq!(batches(&[5, 1, 9, 2, 3], 2, None), [vec![0, 1], vec![2, 3], vec![4]]);
    }

    #[test]
    fn under_a_budget_groups_similar_lengths_and_covers_every_example_once() {
        let lens = [10, 200, 12, 190, 11, 500, 9];
        let b = batches(&lens, 8, Some(400));
        // Short ones together, the two long ones together, the longest alone.
        assert_eq!(b, [vec![6, 0, 4, 2], vec![3, 1], vec![5]]);
        for batch in &b {
            let longest = batch.iter().map(|&i| lens[i]).max().unwrap();
            assert!(batch.len() == 1 || batch.len() * longest <= 400);
        }
        let mut all: Vec<usize> = b.concat();
        all.sort_unstable();
        assert_eq!(all, (0..lens.len()).collect::<Vec<_>>());
        assert!(padding_ratio(&lens, &b) < padding_ratio(&lens, &batches(&lens, 2, None)));
    }
}
