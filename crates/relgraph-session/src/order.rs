//! Ordering a flush's row operations: a dependency graph over the
//! operations, sorted by Kahn's algorithm. Among the operations that are
//! ready, the lowest (kind, table rank) bucket goes first, so operations of
//! one kind on one table stay together and the store can batch them; within
//! a bucket, the operation made first (the lowest index: objects in creation
//! order, links in the order they were made). The result is the smallest
//! order by (bucket, index) that the dependencies allow, so when sorting by
//! (bucket, index) already meets every dependency, that sort is the answer
//! and Kahn's algorithm does not run. Cycles are found with petgraph's SCCs
//! and broken through nullable foreign keys (an INSERT with NULL, then an
//! UPDATE), or reported.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use petgraph::graph::DiGraph;

/// Why one operation must follow another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dep {
    /// A foreign key orders two rows: an INSERT after the INSERT of the row
    /// it references, or a DELETE before the DELETE of the row it references.
    /// When `nullable`, a cycle can be broken through it: INSERT with NULL and
    /// UPDATE afterwards, or UPDATE to NULL before both DELETEs.
    ForeignKey { nullable: bool },
    /// Any other order constraint.
    Must,
}

/// A dependency: `before` runs before `after`. For a foreign-key
/// dependency, `fk` names the foreign key, so a cycle can be broken through it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Edge {
    pub(crate) before: u32,
    pub(crate) after: u32,
    pub(crate) dep: Dep,
    pub(crate) fk: Option<relgraph_core::ForeignKeyId>,
}

/// The result of ordering: positions, or the nodes of the smallest cycle
/// that could not be broken, and the breakable edges to break.
pub(crate) enum Ordered {
    Done(Vec<u32>),
    Break(Vec<usize>),
    Cycle(Vec<u32>),
}

/// Sorts `n` nodes with `bucket[i]` priorities under `edges`.
pub(crate) fn order(n: usize, bucket: &[u64], edges: &[Edge]) -> Ordered {
    match sorted_if_consistent(n, bucket, edges) {
        Some(sorted) => Ordered::Done(sorted),
        None => kahn(n, bucket, edges),
    }
}

/// Kahn's algorithm, the lowest (bucket, index) first among the ready nodes.
fn kahn(n: usize, bucket: &[u64], edges: &[Edge]) -> Ordered {
    let mut indegree = vec![0u32; n];
    let mut offsets = vec![0u32; n + 1];
    for e in edges {
        indegree[e.after as usize] += 1;
        offsets[e.before as usize + 1] += 1;
    }
    for i in 0..n {
        offsets[i + 1] += offsets[i];
    }
    let mut targets = vec![0u32; edges.len()];
    let mut fill = offsets.clone();
    for e in edges {
        targets[fill[e.before as usize] as usize] = e.after;
        fill[e.before as usize] += 1;
    }
    let mut ready: BTreeMap<u64, BinaryHeap<Reverse<u32>>> = BTreeMap::new();
    for i in 0..n {
        if indegree[i] == 0 {
            ready.entry(bucket[i]).or_default().push(Reverse(i as u32));
        }
    }
    let mut out = Vec::with_capacity(n);
    while let Some(mut entry) = ready.first_entry() {
        let queue = entry.get_mut();
        let Reverse(node) = queue.pop().expect("buckets are removed when empty");
        if queue.is_empty() {
            entry.remove();
        }
        out.push(node);
        for &t in &targets[offsets[node as usize] as usize..offsets[node as usize + 1] as usize] {
            indegree[t as usize] -= 1;
            if indegree[t as usize] == 0 {
                ready.entry(bucket[t as usize]).or_default().push(Reverse(t));
            }
        }
    }
    if out.len() == n {
        return Ordered::Done(out);
    }
    // What is left holds at least one cycle: look at its strongly connected components.
    let stuck: Vec<bool> = (0..n).map(|i| indegree[i] > 0).collect();
    let mut graph = DiGraph::<u32, usize>::new();
    let mut index = vec![None; n];
    for i in 0..n {
        if stuck[i] {
            index[i] = Some(graph.add_node(i as u32));
        }
    }
    for (k, e) in edges.iter().enumerate() {
        if let (Some(a), Some(b)) = (index[e.before as usize], index[e.after as usize]) {
            graph.add_edge(a, b, k);
        }
    }
    let mut breakable = Vec::new();
    let mut unbreakable = None;
    for scc in petgraph::algo::tarjan_scc(&graph) {
        let members: std::collections::HashSet<_> = scc.iter().copied().collect();
        let inner: Vec<usize> = graph
            .edge_indices()
            .filter(|&e| {
                let (a, b) = graph.edge_endpoints(e).expect("live edge");
                members.contains(&a) && members.contains(&b)
            })
            .map(|e| graph[e])
            .collect();
        if inner.is_empty() {
            continue;
        }
        let here: Vec<usize> =
            inner.iter().copied().filter(|&k| edges[k].dep == Dep::ForeignKey { nullable: true }).collect();
        if here.is_empty() {
            let mut nodes: Vec<u32> = scc.iter().map(|&i| graph[i]).collect();
            nodes.sort_unstable();
            unbreakable = Some(nodes);
        } else {
            // One edge per component and round: the rest may no longer be in a cycle.
            breakable.push(here[0]);
        }
    }
    match unbreakable {
        Some(nodes) => Ordered::Cycle(nodes),
        None => {
            breakable.sort_unstable();
            Ordered::Break(breakable)
        }
    }
}

/// The nodes sorted by (bucket, index), if that order puts every edge's
/// `before` first; O(nodes + edges). The sort is stable over few distinct
/// buckets, so it counts them rather than comparing nodes.
fn sorted_if_consistent(n: usize, bucket: &[u64], edges: &[Edge]) -> Option<Vec<u32>> {
    let mut counts: BTreeMap<u64, u32> = BTreeMap::new();
    // Neighbouring nodes mostly share a bucket: count runs, not nodes.
    let mut i = 0;
    while i < n {
        let b = bucket[i];
        let start = i;
        while i < n && bucket[i] == b {
            i += 1;
        }
        *counts.entry(b).or_default() += (i - start) as u32;
    }
    let mut next: BTreeMap<u64, u32> = BTreeMap::new();
    let mut at = 0;
    for (&b, &count) in &counts {
        next.insert(b, at);
        at += count;
    }
    let mut position = vec![0u32; n];
    let mut i = 0;
    while i < n {
        let b = bucket[i];
        let slot = next.get_mut(&b).expect("every bucket was counted");
        while i < n && bucket[i] == b {
            position[i] = *slot;
            *slot += 1;
            i += 1;
        }
    }
    if edges.iter().any(|e| position[e.before as usize] >= position[e.after as usize]) {
        return None;
    }
    let mut sorted = vec![0u32; n];
    for (node, &p) in position.iter().enumerate() {
        sorted[p as usize] = node as u32;
    }
    Some(sorted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn must(before: u32, after: u32) -> Edge {
        Edge { before, after, dep: Dep::Must, fk: None }
    }

    #[test]
    fn the_sort_shortcut_gives_kahns_order() {
        // Small random graphs: whenever sorting by (bucket, index) meets every
        // edge, it must be exactly what Kahn's algorithm produces.
        let mut rng = relgraph_testkit::rng::XorShift::new(0x9e37_79b9_7f4a_7c15u64);
        let mut next = |n: u64| rng.below(n);
        let mut shortcuts = 0;
        for _ in 0..2000 {
            let n = 1 + next(12) as usize;
            let bucket: Vec<u64> = (0..n).map(|_| next(3)).collect();
            let edges: Vec<Edge> = (0..next(10))
                .map(|_| (next(n as u64) as u32, next(n as u64) as u32))
                .filter(|(a, b)| a != b)
                .map(|(a, b)| must(a, b))
                .collect();
            if let Some(sorted) = sorted_if_consistent(n, &bucket, &edges) {
                shortcuts += 1;
                let Ordered::Done(kahn) = kahn(n, &bucket, &edges) else {
                    panic!("a consistent order has no cycle")
                };
                assert_eq!(sorted, kahn, "buckets {bucket:?}, edges {edges:?}");
            }
        }
        assert!(shortcuts > 200, "the shortcut was tried {shortcuts} times");
    }

    #[test]
    fn within_a_bucket_the_lowest_index_goes_first() {
        // Node 2 must wait for node 3 (a later bucket would not matter here):
        // Kahn's algorithm takes 0, 1, then 3 and 2 in index order once ready.
        let Ordered::Done(order) = order(4, &[1, 1, 1, 1], &[must(3, 2)]) else { panic!("no cycle") };
        assert_eq!(order, [0, 1, 3, 2]);
        // 3 becomes ready before 2 (freed by 0 and 1 in turn), yet 2 goes first.
        let Ordered::Done(order) = kahn(4, &[1, 1, 1, 1], &[must(0, 3), must(1, 2)]) else {
            panic!("no cycle")
        };
        assert_eq!(order, [0, 1, 2, 3]);
    }

    #[test]
    fn buckets_group_and_edges_win() {
        // Node 0 is in a later bucket but must precede node 1.
        let Ordered::Done(order) = order(3, &[5, 1, 1], &[must(0, 1)]) else { panic!("no cycle") };
        assert_eq!(order, [2, 0, 1]);
    }

    #[test]
    fn cycles_are_broken_only_through_nullable_foreign_keys() {
        let fk = |a, b, nullable| Edge { before: a, after: b, dep: Dep::ForeignKey { nullable }, fk: None };
        match order(2, &[0, 0], &[fk(0, 1, true), fk(1, 0, false)]) {
            Ordered::Break(edges) => assert_eq!(edges, [0]),
            _ => panic!("the nullable edge breaks the cycle"),
        }
        match order(2, &[0, 0], &[fk(0, 1, false), fk(1, 0, false)]) {
            Ordered::Cycle(nodes) => assert_eq!(nodes, [0, 1]),
            _ => panic!("no nullable edge: a cycle"),
        }
    }
}
