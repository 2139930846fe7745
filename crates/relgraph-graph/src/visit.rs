//! petgraph integration: the object graph seen through petgraph's `visit`
//! traits, so petgraph's traversals (`Bfs`, `Dfs`, `DfsPostOrder`) and
//! algorithms (`toposort`, `has_path_connecting`, ...) run on it directly.
//!
//! Two views: `&Graph` is every object with every link as an undirected
//! neighbourhood, and [`LinkView`] is one relationship, its members as the
//! outgoing neighbours and the reverse side as the incoming ones.

use std::collections::HashSet;

use petgraph::Direction as PetDirection;
use petgraph::visit::{
    GraphBase, GraphRef, IntoNeighbors, IntoNeighborsDirected, IntoNodeIdentifiers, NodeCount, Visitable,
};
use relgraph_core::{End, EntityId, LinkId, RelationshipId};

use crate::engine::Members;
use crate::{Graph, GraphError, ObjectKey};

/// A link as petgraph sees it: its type and its two objects, source first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LinkEdge {
    /// The link type.
    pub link: LinkId,
    /// The object at the link's source end.
    pub source: ObjectKey,
    /// The object at the link's target end.
    pub target: ObjectKey,
}

/// One relationship as a directed petgraph graph over the graph's objects:
/// the outgoing neighbours of an object are its members, the incoming ones
/// are the objects that hold it as a member. Objects of other entities have
/// no neighbours. Borrows the graph.
#[derive(Clone, Copy)]
pub struct LinkView<'g> {
    graph: &'g Graph,
    link: LinkId,
    end: End,
    /// The entity at `end` and at the opposite end.
    entities: [EntityId; 2],
}

impl std::fmt::Debug for LinkView<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkView").field("link", &self.link).field("end", &self.end).finish()
    }
}

impl Graph {
    /// `rel` as a petgraph graph; see [`LinkView`]. O(1).
    ///
    /// # Errors
    /// [`GraphError::UnknownRelationship`] for a handle from another schema.
    pub fn link_view(&self, rel: RelationshipId) -> Result<LinkView<'_>, GraphError> {
        let info = self.rel_info(rel)?;
        Ok(LinkView { graph: self, link: info.link, end: info.end, entities: [info.entity, info.target] })
    }

    fn members_at(&self, key: ObjectKey, entity: EntityId, link: LinkId, end: End) -> Members<'_> {
        match self.objects.get(key) {
            Some(object) if object.entity == entity => {
                self.slot_members(key, self.link_slots[link.index()][end.index()], end)
            }
            _ => Members::empty(self),
        }
    }
}

impl GraphBase for LinkView<'_> {
    type NodeId = ObjectKey;
    type EdgeId = LinkEdge;
}

impl GraphRef for LinkView<'_> {}

impl<'g> IntoNeighbors for LinkView<'g> {
    type Neighbors = Members<'g>;

    fn neighbors(self, key: ObjectKey) -> Members<'g> {
        self.graph.members_at(key, self.entities[0], self.link, self.end)
    }
}

impl<'g> IntoNeighborsDirected for LinkView<'g> {
    type NeighborsDirected = Members<'g>;

    fn neighbors_directed(self, key: ObjectKey, dir: PetDirection) -> Members<'g> {
        match dir {
            PetDirection::Outgoing => self.neighbors(key),
            PetDirection::Incoming => {
                self.graph.members_at(key, self.entities[1], self.link, self.end.opposite())
            }
        }
    }
}

impl Visitable for LinkView<'_> {
    type Map = HashSet<ObjectKey>;

    fn visit_map(&self) -> HashSet<ObjectKey> {
        HashSet::new()
    }

    fn reset_map(&self, map: &mut HashSet<ObjectKey>) {
        map.clear();
    }
}

impl<'g> IntoNodeIdentifiers for LinkView<'g> {
    type NodeIdentifiers = Box<dyn Iterator<Item = ObjectKey> + 'g>;

    /// The objects at either end of the link.
    fn node_identifiers(self) -> Self::NodeIdentifiers {
        let entities = self.entities;
        Box::new(self.graph.objects().filter(move |(_, e)| entities.contains(e)).map(|(k, _)| k))
    }
}

impl NodeCount for LinkView<'_> {
    fn node_count(&self) -> usize {
        self.graph.objects().filter(|(_, e)| self.entities.contains(e)).count()
    }
}

/// Every object linked to one object, over all its links, in slot order.
pub struct AllNeighbors<'g> {
    graph: &'g Graph,
    key: ObjectKey,
    slot: usize,
    current: Members<'g>,
}

impl Iterator for AllNeighbors<'_> {
    type Item = ObjectKey;

    fn next(&mut self) -> Option<ObjectKey> {
        loop {
            if let Some(next) = self.current.next() {
                return Some(next);
            }
            let object = self.graph.objects.get(self.key)?;
            let entity = self.graph.schema.entity(object.entity);
            let &(_, end) = entity.slots.get(self.slot)?;
            self.current = self.graph.slot_members(self.key, self.slot as u32, end);
            self.slot += 1;
        }
    }
}

impl GraphBase for Graph {
    type NodeId = ObjectKey;
    type EdgeId = LinkEdge;
}

impl<'g> IntoNeighbors for &'g Graph {
    type Neighbors = AllNeighbors<'g>;

    /// Every object linked to `key` by any link, from either end.
    fn neighbors(self, key: ObjectKey) -> AllNeighbors<'g> {
        AllNeighbors { graph: self, key, slot: 0, current: Members::empty(self) }
    }
}

impl Visitable for Graph {
    type Map = HashSet<ObjectKey>;

    fn visit_map(&self) -> HashSet<ObjectKey> {
        HashSet::new()
    }

    fn reset_map(&self, map: &mut HashSet<ObjectKey>) {
        map.clear();
    }
}

impl<'g> IntoNodeIdentifiers for &'g Graph {
    type NodeIdentifiers = Box<dyn Iterator<Item = ObjectKey> + 'g>;

    fn node_identifiers(self) -> Self::NodeIdentifiers {
        Box::new(self.objects().map(|(k, _)| k))
    }
}

impl NodeCount for Graph {
    fn node_count(&self) -> usize {
        self.len()
    }
}
