//! The back-populate engine: every relationship operation as edge edits.
//!
//! One link is one edge, listed in a slot at each of its two objects. All
//! edits go through `connect` and `disconnect`, which update both slots and
//! the edge arena together, so no operation can leave one side showing a
//! link the other does not. Cardinality is enforced in `connect`'s callers:
//! before an edge enters a scalar slot, the edge it displaces is disconnected.

use std::collections::{HashMap, HashSet};

use petgraph::visit::{Bfs, Reversed};

use relgraph_core::{End, LinkId, RelationshipId};

use crate::{EdgeIx, Graph, GraphError, ObjectKey, RelInfo, Slot, no_edge};

/// The members of one relationship at one object, in order.
///
/// Borrows the graph; O(1) per step.
pub struct Members<'g> {
    graph: &'g Graph,
    next: EdgeIx,
    /// The end the viewing object sits at.
    end: End,
    remaining: usize,
}

impl Iterator for Members<'_> {
    type Item = ObjectKey;

    fn next(&mut self) -> Option<ObjectKey> {
        if self.remaining == 0 {
            return None;
        }
        let edge = self.next;
        // A scalar slot's edge has no list neighbours at this end, so `next` is the absent edge.
        self.next = self.graph.edges[edge].next[self.end.index()];
        self.remaining -= 1;
        Some(self.graph.far(edge, self.end))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for Members<'_> {}

impl<'g> Members<'g> {
    pub(crate) fn empty(graph: &'g Graph) -> Self {
        Members { graph, next: no_edge(), end: End::Source, remaining: 0 }
    }
}

impl Graph {
    pub(crate) fn rel_info(&self, rel: RelationshipId) -> Result<RelInfo, GraphError> {
        self.rels.get(rel.index()).copied().ok_or_else(|| GraphError::UnknownRelationship(rel.index()))
    }

    /// Checks that `key` is live and has `rel`.
    fn owner(&self, key: ObjectKey, rel: RelationshipId, info: &RelInfo) -> Result<(), GraphError> {
        let object = self.object(key)?;
        if object.entity != info.entity {
            return Err(GraphError::NotOnEntity {
                relationship: self.schema.relationship_path(rel),
                entity: self.schema.entity(object.entity).name.clone(),
            });
        }
        Ok(())
    }

    /// Checks that `key` is live and may be a member of `rel`.
    fn member(&self, key: ObjectKey, rel: RelationshipId, info: &RelInfo) -> Result<(), GraphError> {
        let object = self.object(key)?;
        if object.entity != info.target {
            return Err(GraphError::WrongEntity {
                relationship: self.schema.relationship_path(rel),
                expected: self.schema.entity(info.target).name.clone(),
                found: self.schema.entity(object.entity).name.clone(),
            });
        }
        Ok(())
    }

    /// Checks `key` as an owner and `member` as a member of `rel`, in that order.
    fn pair(&self, key: ObjectKey, rel: RelationshipId, member: ObjectKey) -> Result<RelInfo, GraphError> {
        let info = self.rel_info(rel)?;
        self.owner(key, rel, &info)?;
        self.member(member, rel, &info)?;
        Ok(info)
    }

    fn not_a_collection(&self, rel: RelationshipId) -> GraphError {
        GraphError::NotACollection { relationship: self.schema.relationship_path(rel) }
    }

    fn not_a_scalar(&self, rel: RelationshipId) -> GraphError {
        GraphError::NotAScalar { relationship: self.schema.relationship_path(rel) }
    }

    fn slot(&self, key: ObjectKey, slot: u32) -> Slot {
        self.objects[key].slots[slot as usize]
    }

    /// The first edge of an object's slot, if any.
    pub(crate) fn first_edge(&self, key: ObjectKey, slot: usize) -> Option<EdgeIx> {
        let edge = match self.objects[key].slots[slot] {
            Slot::One(edge) => edge,
            Slot::Many { head, .. } => head,
        };
        (edge != no_edge()).then_some(edge)
    }

    /// The object at the far end of `edge`, seen from end `end`.
    pub(crate) fn far(&self, edge: EdgeIx, end: End) -> ObjectKey {
        self.edges[edge].objects[end.opposite().index()]
    }

    /// The edge of `link` between the object at end `end` (`near`) and `far_node`. O(min degree).
    fn find_edge(&self, link: LinkId, end: End, near: ObjectKey, far: ObjectKey) -> Option<EdgeIx> {
        let slots = self.link_slots[link.index()];
        let near_slot = self.slot(near, slots[end.index()]);
        let far_slot = self.slot(far, slots[end.opposite().index()]);
        // Walk whichever side is shorter, checking the far endpoint of each edge.
        let (slot, walk_end, wanted) = match (near_slot, far_slot) {
            (Slot::One(_), _) => (near_slot, end, far),
            (_, Slot::One(_)) => (far_slot, end.opposite(), near),
            (Slot::Many { len: a, .. }, Slot::Many { len: b, .. }) if a <= b => (near_slot, end, far),
            _ => (far_slot, end.opposite(), near),
        };
        match slot {
            Slot::One(edge) => (edge != no_edge() && self.far(edge, walk_end) == wanted).then_some(edge),
            Slot::Many { head, .. } => {
                let mut edge = head;
                while edge != no_edge() {
                    if self.far(edge, walk_end) == wanted {
                        return Some(edge);
                    }
                    edge = self.edges[edge].next[walk_end.index()];
                }
                None
            }
        }
    }

    /// Adds the edge of `link` from `source` to `target`, at the end of both
    /// objects' slots. The caller has disconnected whatever a scalar slot held.
    fn connect(&mut self, link: LinkId, source: ObjectKey, target: ObjectKey) -> EdgeIx {
        let edge = self.edges.add(link, [source, target]);
        if self.journaling {
            self.journal.push(crate::LinkChange { link, source, target, added: true });
        }
        let slots = self.link_slots[link.index()];
        self.attach(edge, 0, source, slots[0]);
        self.attach(edge, 1, target, slots[1]);
        edge
    }

    fn attach(&mut self, edge: EdgeIx, end: usize, key: ObjectKey, slot: u32) {
        let slot = &mut self.objects[key].slots[slot as usize];
        match slot {
            Slot::One(held) => {
                debug_assert!(*held == no_edge(), "a scalar slot is emptied before it is filled");
                *held = edge;
            }
            Slot::Many { head, tail, len } => {
                let old_tail = *tail;
                if old_tail == no_edge() {
                    *head = edge;
                } else {
                    self.edges[old_tail].next[end] = edge;
                }
                *tail = edge;
                *len += 1;
                self.edges[edge].prev[end] = old_tail;
            }
        }
    }

    /// Takes `edge` out of `key`'s slot at end `end`, or with `BACK` puts
    /// it back where it was (a constant: unlinking is on the hot path).
    /// Taking out leaves the edge's own `prev` and `next` as they were, so
    /// putting back is exact when edges return in the reverse order they
    /// left.
    fn unlink_or_restore<const BACK: bool>(&mut self, edge: EdgeIx, end: usize, key: ObjectKey, slot: u32) {
        let crate::EdgeData { prev, next, .. } = self.edges[edge];
        // What the neighbours point at: the edge itself, or past it.
        let (after_prev, before_next) = if BACK { (edge, edge) } else { (next[end], prev[end]) };
        let slot = &mut self.objects[key].slots[slot as usize];
        match slot {
            Slot::One(held) => *held = if BACK { edge } else { no_edge() },
            Slot::Many { head, tail, len } => {
                if prev[end] == no_edge() {
                    *head = after_prev;
                } else {
                    self.edges[prev[end]].next[end] = after_prev;
                }
                if next[end] == no_edge() {
                    *tail = before_next;
                } else {
                    self.edges[next[end]].prev[end] = before_next;
                }
                if BACK {
                    *len += 1;
                } else {
                    *len -= 1;
                }
            }
        }
    }

    /// Takes an edge out of both objects' slots, keeping it in the arena.
    pub(crate) fn detach_edge(&mut self, edge: EdgeIx) {
        self.edge_ends::<false>(edge);
    }

    /// Undoes [`Graph::detach_edge`] (the last edge taken out goes back first).
    pub(crate) fn attach_edge(&mut self, edge: EdgeIx) {
        self.edge_ends::<true>(edge);
    }

    /// [`Graph::unlink_or_restore`] at both ends of `edge`, the ends put
    /// back in the reverse order they were taken out.
    fn edge_ends<const BACK: bool>(&mut self, edge: EdgeIx) {
        let data = self.edges[edge];
        let link = data.link.expect("detached edges are live");
        let slots = self.link_slots[link.index()];
        for end in if BACK { [1, 0] } else { [0, 1] } {
            self.unlink_or_restore::<BACK>(edge, end, data.objects[end], slots[end]);
        }
    }

    /// Frees a detached edge, journaling its removal when the journal is on.
    pub(crate) fn free_edge(&mut self, edge: EdgeIx) {
        let data = self.edges[edge];
        let link = data.link.expect("freed edges are live");
        self.edges.remove(edge);
        if self.journaling {
            self.journal.push(crate::LinkChange {
                link,
                source: data.objects[0],
                target: data.objects[1],
                added: false,
            });
        }
    }

    /// Removes an edge from both objects' slots and from the arena.
    pub(crate) fn disconnect(&mut self, edge: EdgeIx) {
        self.detach_edge(edge);
        self.free_edge(edge);
    }

    /// Links `near` (at `end`) to `far`, displacing whatever either scalar side held.
    fn link_pair(&mut self, link: LinkId, end: End, near: ObjectKey, far: ObjectKey) {
        let slots = self.link_slots[link.index()];
        let many = self.link_many[link.index()];
        for (key, e) in [(near, end), (far, end.opposite())] {
            if !many[e.index()]
                && let Slot::One(held) = self.slot(key, slots[e.index()])
                && held != no_edge()
            {
                self.disconnect(held);
            }
        }
        let (source, target) = if end == End::Source { (near, far) } else { (far, near) };
        self.connect(link, source, target);
    }

    /// Appends `member` to the collection `rel` of `key`. A member that is
    /// already there stays where it is (membership is a set); a member whose
    /// own side is a scalar leaves its previous owner first. Returns whether
    /// anything changed. O(1) for one-to-many, O(min degree) for many-to-many.
    ///
    /// # Errors
    /// [`GraphError::StaleKey`] for either key, [`GraphError::NotOnEntity`],
    /// [`GraphError::WrongEntity`], [`GraphError::NotACollection`] when `rel`
    /// is a scalar. Nothing changes on error.
    pub fn append(
        &mut self,
        key: ObjectKey,
        rel: RelationshipId,
        member: ObjectKey,
    ) -> Result<bool, GraphError> {
        let info = self.pair(key, rel, member)?;
        if !info.many {
            return Err(self.not_a_collection(rel));
        }
        if self.find_edge(info.link, info.end, key, member).is_some() {
            return Ok(false);
        }
        self.link_pair(info.link, info.end, key, member);
        Ok(true)
    }

    /// Removes `member` from the collection or scalar `rel` of `key`, from
    /// both sides. Returns whether it was there. O(1) for a scalar side,
    /// O(min degree) otherwise.
    ///
    /// # Errors
    /// As [`Graph::append`], except that scalars are accepted.
    pub fn remove_member(
        &mut self,
        key: ObjectKey,
        rel: RelationshipId,
        member: ObjectKey,
    ) -> Result<bool, GraphError> {
        let info = self.pair(key, rel, member)?;
        match self.find_edge(info.link, info.end, key, member) {
            Some(edge) => {
                self.disconnect(edge);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Sets the scalar `rel` of `key` to `target`, or clears it with `None`,
    /// and returns the previous target. The previous target's reverse side
    /// loses `key` at once; under a one-to-one link, `target`'s previous
    /// partner is left empty. O(1) plus the unlinked edges' removal.
    ///
    /// # Errors
    /// [`GraphError::StaleKey`] for either key, [`GraphError::NotOnEntity`],
    /// [`GraphError::WrongEntity`], [`GraphError::NotAScalar`] when `rel` is a
    /// collection. Nothing changes on error.
    pub fn set(
        &mut self,
        key: ObjectKey,
        rel: RelationshipId,
        target: Option<ObjectKey>,
    ) -> Result<Option<ObjectKey>, GraphError> {
        let info = self.rel_info(rel)?;
        self.owner(key, rel, &info)?;
        if let Some(t) = target {
            self.member(t, rel, &info)?;
        }
        if info.many {
            return Err(self.not_a_scalar(rel));
        }
        let Slot::One(held) = self.slot(key, info.slot) else {
            unreachable!("a scalar relationship has a scalar slot")
        };
        let previous = (held != no_edge()).then(|| self.far(held, info.end));
        match target {
            Some(t) => {
                if previous != Some(t) {
                    self.link_pair(info.link, info.end, key, t);
                }
            }
            None => {
                if held != no_edge() {
                    self.disconnect(held);
                }
            }
        }
        Ok(previous)
    }

    /// Makes the collection `rel` of `key` hold exactly `members`, in that
    /// order (repeats ignored). Links to members that stay are kept as they
    /// are, so a flush sees no change for them. O(old + new members).
    ///
    /// # Errors
    /// As [`Graph::append`], checked for every member before anything changes.
    pub fn replace(
        &mut self,
        key: ObjectKey,
        rel: RelationshipId,
        members: &[ObjectKey],
    ) -> Result<(), GraphError> {
        let info = self.rel_info(rel)?;
        self.owner(key, rel, &info)?;
        for &m in members {
            self.member(m, rel, &info)?;
        }
        if !info.many {
            return Err(self.not_a_collection(rel));
        }
        let wanted: HashSet<ObjectKey> = members.iter().copied().collect();
        let mut kept: HashMap<ObjectKey, EdgeIx> = HashMap::new();
        let mut edge = self.first_edge(key, info.slot as usize).unwrap_or(no_edge());
        while edge != no_edge() {
            let next = self.edges[edge].next[info.end.index()];
            let member = self.far(edge, info.end);
            if wanted.contains(&member) {
                kept.insert(member, edge);
            } else {
                self.disconnect(edge);
            }
            edge = next;
        }
        let mut placed = HashSet::with_capacity(members.len());
        let mut order = Vec::with_capacity(members.len());
        for &m in members {
            if !placed.insert(m) {
                continue;
            }
            if let Some(&edge) = kept.get(&m) {
                order.push(edge);
                continue;
            }
            // The member is not linked here, so whatever its scalar side
            // displaces belongs to another owner, never to `kept`.
            self.link_pair(info.link, info.end, key, m);
            let Slot::Many { tail, .. } = self.slot(key, info.slot) else {
                unreachable!("a collection relationship has a collection slot")
            };
            order.push(tail);
        }
        self.relink(key, info.slot, info.end.index(), &order);
        Ok(())
    }

    /// Rewrites the order of an object's collection slot to `order`, which
    /// holds exactly the slot's edges.
    fn relink(&mut self, key: ObjectKey, slot: u32, end: usize, order: &[EdgeIx]) {
        for (i, &edge) in order.iter().enumerate() {
            let data = &mut self.edges[edge];
            data.prev[end] = if i == 0 { no_edge() } else { order[i - 1] };
            data.next[end] = order.get(i + 1).copied().unwrap_or(no_edge());
        }
        let Slot::Many { head, tail, len } = &mut self.objects[key].slots[slot as usize] else {
            unreachable!("only collection slots are relinked")
        };
        debug_assert_eq!(*len as usize, order.len());
        *head = order.first().copied().unwrap_or(no_edge());
        *tail = order.last().copied().unwrap_or(no_edge());
    }

    /// Unlinks every member of `rel` at `key`, from both sides, and returns
    /// how many there were. O(members).
    ///
    /// # Errors
    /// [`GraphError::StaleKey`], [`GraphError::NotOnEntity`].
    pub fn clear(&mut self, key: ObjectKey, rel: RelationshipId) -> Result<usize, GraphError> {
        let info = self.rel_info(rel)?;
        self.owner(key, rel, &info)?;
        let mut count = 0;
        while let Some(edge) = self.first_edge(key, info.slot as usize) {
            self.disconnect(edge);
            count += 1;
        }
        Ok(count)
    }

    /// The members of `rel` at `key`, in order: append order for a
    /// collection, at most one for a scalar. O(1) to create.
    ///
    /// # Errors
    /// [`GraphError::StaleKey`], [`GraphError::NotOnEntity`].
    pub fn members(&self, key: ObjectKey, rel: RelationshipId) -> Result<Members<'_>, GraphError> {
        let info = self.rel_info(rel)?;
        self.owner(key, rel, &info)?;
        Ok(self.slot_members(key, info.slot, info.end))
    }

    pub(crate) fn slot_members(&self, key: ObjectKey, slot: u32, end: End) -> Members<'_> {
        match self.slot(key, slot) {
            Slot::One(edge) => {
                Members { graph: self, next: edge, end, remaining: usize::from(edge != no_edge()) }
            }
            Slot::Many { head, len, .. } => Members { graph: self, next: head, end, remaining: len as usize },
        }
    }

    /// Checks that `key` is live and sits at `end` of `link`.
    fn at_end(&self, key: ObjectKey, link: LinkId, end: End) -> Result<(), GraphError> {
        let object = self.object(key)?;
        let def = self
            .schema
            .links()
            .get(link.index())
            .ok_or_else(|| GraphError::UnknownRelationship(link.index()))?;
        let expected = def.end(end).entity;
        if object.entity != expected {
            return Err(GraphError::WrongEntity {
                relationship: format!("link {} ({end:?} end)", link.index()),
                expected: self.schema.entity(expected).name.clone(),
                found: self.schema.entity(object.entity).name.clone(),
            });
        }
        Ok(())
    }

    /// Checks both objects' ends of `link` and finds their edge, if any.
    fn link_edge(
        &self,
        link: LinkId,
        source: ObjectKey,
        target: ObjectKey,
    ) -> Result<Option<EdgeIx>, GraphError> {
        self.at_end(source, link, End::Source)?;
        self.at_end(target, link, End::Target)?;
        Ok(self.find_edge(link, End::Source, source, target))
    }

    /// The objects linked to `key` by `link`, where `key` sits at `end`,
    /// whether or not that end has a named relationship. O(1) to create.
    ///
    /// # Errors
    /// [`GraphError::StaleKey`], [`GraphError::WrongEntity`] when `key` is not at `end`.
    pub fn link_members(&self, key: ObjectKey, link: LinkId, end: End) -> Result<Members<'_>, GraphError> {
        self.at_end(key, link, end)?;
        Ok(self.slot_members(key, self.link_slots[link.index()][end.index()], end))
    }

    /// Links `source` to `target` by `link`, displacing what a scalar end
    /// held, as [`Graph::append`] does from a named side. Returns whether
    /// anything changed. For the session's loading of unnamed ends.
    ///
    /// # Errors
    /// [`GraphError::StaleKey`], [`GraphError::WrongEntity`].
    pub fn connect_link(
        &mut self,
        link: LinkId,
        source: ObjectKey,
        target: ObjectKey,
    ) -> Result<bool, GraphError> {
        if self.link_edge(link, source, target)?.is_some() {
            return Ok(false);
        }
        self.link_pair(link, End::Source, source, target);
        Ok(true)
    }

    /// Removes the `link` between `source` and `target`, if any.
    ///
    /// # Errors
    /// [`GraphError::StaleKey`], [`GraphError::WrongEntity`].
    pub fn disconnect_link(
        &mut self,
        link: LinkId,
        source: ObjectKey,
        target: ObjectKey,
    ) -> Result<bool, GraphError> {
        let edge = self.link_edge(link, source, target)?;
        if let Some(edge) = edge {
            self.disconnect(edge);
        }
        Ok(edge.is_some())
    }

    /// The target of the scalar `rel` at `key`. O(1).
    ///
    /// # Errors
    /// [`GraphError::StaleKey`], [`GraphError::NotOnEntity`], [`GraphError::NotAScalar`].
    pub fn scalar(&self, key: ObjectKey, rel: RelationshipId) -> Result<Option<ObjectKey>, GraphError> {
        let info = self.rel_info(rel)?;
        self.owner(key, rel, &info)?;
        if info.many {
            return Err(self.not_a_scalar(rel));
        }
        Ok(self.slot_members(key, info.slot, info.end).next())
    }

    /// How many members `rel` has at `key`. O(1).
    ///
    /// # Errors
    /// [`GraphError::StaleKey`], [`GraphError::NotOnEntity`].
    pub fn count(&self, key: ObjectKey, rel: RelationshipId) -> Result<usize, GraphError> {
        Ok(self.members(key, rel)?.len())
    }

    /// Whether `member` is among the members of `rel` at `key`. O(min degree).
    ///
    /// # Errors
    /// [`GraphError::StaleKey`] for either key, [`GraphError::NotOnEntity`], [`GraphError::WrongEntity`].
    pub fn has_member(
        &self,
        key: ObjectKey,
        rel: RelationshipId,
        member: ObjectKey,
    ) -> Result<bool, GraphError> {
        let info = self.pair(key, rel, member)?;
        Ok(self.find_edge(info.link, info.end, key, member).is_some())
    }

    /// Every object reachable from `key` by following the self-referential
    /// `rel` again and again (children, grandchildren, ... for a `children`
    /// relationship), breadth first, each level in collection order, each
    /// object once, `key` itself excluded even on a cycle. O(reached links).
    ///
    /// # Errors
    /// [`GraphError::StaleKey`], [`GraphError::NotOnEntity`], [`GraphError::NotSelfReferential`].
    pub fn descendants(&self, key: ObjectKey, rel: RelationshipId) -> Result<Vec<ObjectKey>, GraphError> {
        let info = self.rel_info(rel)?;
        self.walk(key, rel, info, info.end)
    }

    /// Every object reachable from `key` through the reverse of the
    /// self-referential `rel` (the parent, grandparent, ... for a `children`
    /// relationship), whether or not the reverse side is named. Same order
    /// and cost as [`Graph::descendants`].
    ///
    /// # Errors
    /// As [`Graph::descendants`].
    pub fn ancestors(&self, key: ObjectKey, rel: RelationshipId) -> Result<Vec<ObjectKey>, GraphError> {
        let info = self.rel_info(rel)?;
        self.walk(key, rel, info, info.end.opposite())
    }

    fn walk(
        &self,
        key: ObjectKey,
        rel: RelationshipId,
        info: RelInfo,
        end: End,
    ) -> Result<Vec<ObjectKey>, GraphError> {
        self.owner(key, rel, &info)?;
        if info.entity != info.target {
            return Err(GraphError::NotSelfReferential { relationship: self.schema.relationship_path(rel) });
        }
        let view = self.link_view(rel)?;
        let mut out = Vec::new();
        if end == info.end {
            let mut bfs = Bfs::new(view, key);
            while let Some(next) = bfs.next(view) {
                out.push(next);
            }
        } else {
            let reversed = Reversed(view);
            let mut bfs = Bfs::new(reversed, key);
            while let Some(next) = bfs.next(reversed) {
                out.push(next);
            }
        }
        // Bfs yields its start first; on a cycle it never yields it again.
        debug_assert_eq!(out.first(), Some(&key));
        out.remove(0);
        Ok(out)
    }
}
