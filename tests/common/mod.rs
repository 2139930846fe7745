//! Helpers for the seed tests: names in, checks out, so the tests read like
//! the seed and do not pin the API's shape.
#![allow(dead_code)]

pub mod sql;

use std::sync::Arc;

use relgraph::petgraph::Direction as PetDirection;
use relgraph::petgraph::visit::IntoNeighborsDirected;
use relgraph::{Graph, ObjectKey, RelationshipId, Schema};

pub struct Fx {
    pub graph: Graph,
    pub schema: Arc<Schema>,
}

impl Fx {
    pub fn new(schema: Arc<Schema>) -> Self {
        Fx { graph: Graph::new(schema.clone()), schema }
    }

    /// A new object of the named entity.
    pub fn new_obj(&mut self, entity: &str) -> ObjectKey {
        let entity = self.schema.entity_id(entity).unwrap_or_else(|| panic!("entity {entity}"));
        self.graph.insert(entity)
    }

    /// `"Parent.children"` to its handle.
    pub fn rel(&self, path: &str) -> RelationshipId {
        let (entity, name) = path.split_once('.').expect("Entity.name");
        self.schema.relationship_by_name(entity, name).unwrap_or_else(|| panic!("relationship {path}"))
    }

    /// Asserts the members of `path` at `object`, in order.
    #[track_caller]
    pub fn check(&self, object: ObjectKey, path: &str, expected: &[ObjectKey]) {
        let members: Vec<_> = self.graph.members(object, self.rel(path)).expect("members").collect();
        assert_eq!(members, expected, "{path}");
        let rel = self.rel(path);
        if !self.schema.relationship(rel).uselist {
            assert_eq!(self.graph.scalar(object, rel).expect("scalar"), expected.first().copied(), "{path}");
        }
    }

    /// Asserts what the side nobody named (the reverse of `path`) shows at
    /// `object`: the objects holding it in `path`.
    #[track_caller]
    pub fn check_reverse(&self, object: ObjectKey, path: &str, expected: &[ObjectKey]) {
        let view = self.graph.link_view(self.rel(path)).expect("view");
        let back: Vec<_> = view.neighbors_directed(object, PetDirection::Incoming).collect();
        assert_eq!(back, expected, "reverse of {path}");
    }
}
