//! Ordering a flush's row operations: a dependency graph over the
//! operations, sorted by Kahn's algorithm. Among the operations that are
//! ready, the lowest (kind, table rank) bucket goes first, so operations of
//! one kind on one table stay together and the store can batch them; within
//! a bucket, the order is the order the operations became ready. Cycles are
//! found with petgraph's SCCs and broken through nullable foreign keys (an
//! INSERT with NULL, then an UPDATE), or reported.

use std::collections::{BTreeMap, VecDeque};

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
    let mut ready: BTreeMap<u64, VecDeque<u32>> = BTreeMap::new();
    for i in 0..n {
        if indegree[i] == 0 {
            ready.entry(bucket[i]).or_default().push_back(i as u32);
        }
    }
    let mut out = Vec::with_capacity(n);
    while let Some(mut entry) = ready.first_entry() {
        let queue = entry.get_mut();
        let node = queue.pop_front().expect("buckets are removed when empty");
        if queue.is_empty() {
            entry.remove();
        }
        out.push(node);
        for &t in &targets[offsets[node as usize] as usize..offsets[node as usize + 1] as usize] {
            indegree[t as usize] -= 1;
            if indegree[t as usize] == 0 {
                ready.entry(bucket[t as usize]).or_default().push_back(t);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn must(before: u32, after: u32) -> Edge {
        Edge { before, after, dep: Dep::Must, fk: None }
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
