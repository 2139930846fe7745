//! Detaching objects (what a flush does while its store commits): every
//! link of the detached objects leaves the lists of the objects that stay,
//! as `remove` would take it; putting them back restores every list exactly
//! (order included); removing them for good leaves what `remove` leaves.

use relgraph::{Graph, ObjectKey, RelationshipId};
use relgraph_testkit::rng::XorShift;
use relgraph_testkit::workloads::{self, Handles};

/// A random graph of the workload schema: parents with children (some
/// moved between parents), and lefts linked to rights.
fn random_graph(seed: u64) -> (Graph, Vec<ObjectKey>, Handles) {
    let schema = workloads::schema();
    let h = Handles::new(&schema);
    let mut graph = Graph::new(schema);
    let mut rng = XorShift::new(seed);
    let parents: Vec<ObjectKey> = (0..12).map(|_| graph.insert(h.parent)).collect();
    let lefts: Vec<ObjectKey> = (0..10).map(|_| graph.insert(h.left)).collect();
    let rights: Vec<ObjectKey> = (0..10).map(|_| graph.insert(h.right)).collect();
    let mut objects: Vec<ObjectKey> = parents.iter().chain(&lefts).chain(&rights).copied().collect();
    for _ in 0..60 {
        let child = graph.insert(h.child);
        objects.push(child);
        if rng.below(5) > 0 {
            let parent = parents[rng.below(parents.len() as u64) as usize];
            graph.append(parent, h.children, child).unwrap();
        }
    }
    for _ in 0..80 {
        let (l, r) = (rng.below(10) as usize, rng.below(10) as usize);
        graph.append(lefts[l], h.rights, rights[r]).unwrap();
    }
    // Moves and removals shuffle the collections' order.
    for _ in 0..30 {
        let child = objects[32 + rng.below(60) as usize];
        let parent = parents[rng.below(parents.len() as u64) as usize];
        graph.set(child, h.child_parent, Some(parent)).unwrap();
        let (l, r) = (rng.below(10) as usize, rng.below(10) as usize);
        graph.remove_member(lefts[l], h.rights, rights[r]).unwrap();
    }
    (graph, objects, h)
}

/// Every object's members in every relationship, in order (`None` for a
/// stale key).
fn lists(graph: &Graph, objects: &[ObjectKey], h: &Handles) -> Vec<Option<Vec<Vec<ObjectKey>>>> {
    let rels: [(relgraph::EntityId, RelationshipId); 4] =
        [(h.parent, h.children), (h.child, h.child_parent), (h.left, h.rights), (h.right, h.lefts)];
    objects
        .iter()
        .map(|&o| {
            let entity = graph.entity_of(o).ok()?;
            Some(
                rels.iter()
                    .filter(|(e, _)| *e == entity)
                    .map(|&(_, rel)| graph.members(o, rel).unwrap().collect())
                    .collect(),
            )
        })
        .collect()
}

#[test]
fn detached_objects_leave_every_list_and_come_back_in_place_or_go_as_remove_takes_them() {
    for seed in 1..=100u64 {
        let (mut graph, objects, h) = random_graph(seed);
        let before = lists(&graph, &objects, &h);
        let mut rng = XorShift::new(seed * 7919);
        // Members of lists (children, rights) more often than their owners.
        let mut chosen: Vec<ObjectKey> = objects
            .iter()
            .copied()
            .enumerate()
            .filter(|&(i, _)| rng.below(if i < 22 { 6 } else { 2 }) == 0)
            .map(|(_, o)| o)
            .collect();
        // In any order: a later member of a list may go before an earlier one.
        for i in (1..chosen.len()).rev() {
            chosen.swap(i, rng.below(i as u64 + 1) as usize);
        }
        let gone = |o: &ObjectKey| chosen.contains(o);
        // What the objects that stay hold without the chosen ones.
        let expected: Vec<Option<Vec<Vec<ObjectKey>>>> = objects
            .iter()
            .zip(&before)
            .map(|(o, l)| {
                l.as_ref().map(|l| {
                    if gone(o) {
                        l.iter().map(|_| Vec::new()).collect()
                    } else {
                        l.iter().map(|m| m.iter().copied().filter(|k| !gone(k)).collect()).collect()
                    }
                })
            })
            .collect();

        let detached = graph.detach_objects(&chosen);
        assert_eq!(lists(&graph, &objects, &h), expected, "seed {seed}: detached");
        graph.reattach(detached);
        assert_eq!(lists(&graph, &objects, &h), before, "seed {seed}: put back exactly");

        // Every link put back works as before, both ways along its lists:
        // half the chosen objects removed from it and from the graph as
        // built leave the same lists.
        let (mut reference, _, _) = random_graph(seed);
        let half = chosen.len() / 2;
        for &o in &chosen[..half] {
            graph.remove(o).unwrap();
            reference.remove(o).unwrap();
        }
        assert_eq!(
            lists(&graph, &objects, &h),
            lists(&reference, &objects, &h),
            "seed {seed}: put back works"
        );

        // Removed for good: as `remove` takes them, one by one.
        let detached = graph.detach_objects(&chosen[half..]);
        let rows = graph.remove_detached(detached);
        assert_eq!(rows.rows().len(), chosen.len() - half, "seed {seed}: a row per object");
        for &o in &chosen[half..] {
            reference.remove(o).unwrap();
        }
        let after = lists(&graph, &objects, &h);
        assert_eq!(after, lists(&reference, &objects, &h), "seed {seed}: as remove leaves it");
        for (o, l) in objects.iter().zip(&after) {
            assert_eq!(l.is_none(), gone(o), "seed {seed}: only the chosen keys are stale");
        }
        assert_eq!(graph.link_count(), reference.link_count(), "seed {seed}: the same links live");
    }
}

#[test]
fn detaching_skips_stale_keys_and_nothing_is_journaled_until_removed() {
    let (mut graph, objects, h) = random_graph(3);
    let stale = graph.insert(h.parent);
    graph.remove(stale).unwrap();
    let parent = objects[0];
    let links = graph.members(parent, h.children).unwrap().count();
    graph.drain_journal().for_each(drop);
    graph.set_journaling(true);
    let detached = graph.detach_objects(&[stale, parent]);
    assert_eq!(graph.drain_journal().count(), 0, "detaching journals nothing");
    let rows = graph.remove_detached(detached);
    assert_eq!(rows.rows().len(), 1, "the stale key was skipped");
    assert_eq!(graph.drain_journal().count(), links, "each link removed is journaled once removed");
}

/// Every order of detaching every subset of a parent's four children, put
/// back, then each child removed: the list is as if nothing had been
/// detached, read forwards and changed through its backward links.
#[test]
fn every_order_of_detaching_a_list_is_put_back_exactly() {
    let schema = workloads::schema();
    let h = Handles::new(&schema);
    let orders = permutations_of_subsets(4);
    assert_eq!(orders.len(), 65);
    for order in orders {
        for removed in 0..4 {
            let mut graph = Graph::new(schema.clone());
            let parent = graph.insert(h.parent);
            let children: Vec<ObjectKey> = (0..4).map(|_| graph.insert(h.child)).collect();
            for &c in &children {
                graph.append(parent, h.children, c).unwrap();
            }
            let chosen: Vec<ObjectKey> = order.iter().map(|&i| children[i]).collect();
            let detached = graph.detach_objects(&chosen);
            graph.reattach(detached);
            assert_eq!(graph.members(parent, h.children).unwrap().collect::<Vec<_>>(), children, "{order:?}");
            for &c in &children {
                assert_eq!(graph.scalar(c, h.child_parent).unwrap(), Some(parent), "{order:?}");
            }
            graph.remove(children[removed]).unwrap();
            let mut expected = children.clone();
            expected.remove(removed);
            assert_eq!(
                graph.members(parent, h.children).unwrap().collect::<Vec<_>>(),
                expected,
                "{order:?}, then child {removed} removed"
            );
            // The last one appended goes to the end: the tail is right too.
            let last = graph.insert(h.child);
            graph.append(parent, h.children, last).unwrap();
            assert_eq!(graph.members(parent, h.children).unwrap().last(), Some(last), "{order:?}: the tail");
        }
    }
}

fn permutations_of_subsets(n: usize) -> Vec<Vec<usize>> {
    let mut out = vec![Vec::new()];
    let mut frontier = vec![Vec::new()];
    while let Some(prefix) = frontier.pop() {
        for i in 0..n {
            if !prefix.contains(&i) {
                let mut next = prefix.clone();
                next.push(i);
                out.push(next.clone());
                frontier.push(next);
            }
        }
    }
    out
}
