//! The reference model: the semantics of DESIGN.md rules 1-6, 15, 17 and
//! 21, written as plainly as possible over vectors and maps, with nothing
//! shared with the engine but the schema.

use std::collections::HashMap;

use relgraph_core::{End, EntityId, Schema};

/// Why the model refuses an operation; compared with the engine's error by kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// A removed object.
    Stale,
    /// The relationship is not an attribute of the object's entity.
    NotOnEntity,
    /// The member is of the wrong entity.
    WrongEntity,
    /// A collection operation on a scalar.
    NotACollection,
    /// A scalar operation on a collection.
    NotAScalar,
}

/// What an operation returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Whether something changed (append, remove_member).
    Changed(bool),
    /// The previous target (set).
    Previous(Option<usize>),
    /// How many links went (clear).
    Count(usize),
    /// Nothing to report.
    Done,
}

#[derive(Clone, Copy, Debug)]
struct Rel {
    link: usize,
    end: usize,
    entity: EntityId,
    target: EntityId,
}

/// Objects are numbered in creation order; a removed object keeps its number.
#[derive(Clone, Debug)]
pub struct Model {
    rels: Vec<Rel>,
    many: Vec<[bool; 2]>,
    /// Per entity, its (link, end) pairs.
    ends_of: Vec<Vec<(usize, usize)>>,
    objects: Vec<Option<EntityId>>,
    /// `(link, end, object)` to the objects at the other end, in order.
    lists: HashMap<(usize, usize, usize), Vec<usize>>,
    /// Each object's `name` column (every family table has one), `None` for NULL.
    names: HashMap<usize, Option<String>>,
}

impl Model {
    /// An empty model of `schema`.
    pub fn new(schema: &Schema) -> Self {
        let rels = schema
            .relationships()
            .iter()
            .map(|r| Rel { link: r.link.index(), end: r.end.index(), entity: r.entity, target: r.target })
            .collect();
        let many = schema.links().iter().map(|l| [l.ends[0].many, l.ends[1].many]).collect();
        let ends_of = schema
            .entities()
            .iter()
            .map(|e| e.slots.iter().map(|&(link, end)| (link.index(), end.index())).collect())
            .collect();
        Model { rels, many, ends_of, objects: Vec::new(), lists: HashMap::new(), names: HashMap::new() }
    }

    /// Creates an object and returns its number.
    pub fn insert(&mut self, entity: EntityId) -> usize {
        self.objects.push(Some(entity));
        self.objects.len() - 1
    }

    /// The entity of a live object.
    pub fn entity(&self, object: usize) -> Option<EntityId> {
        self.objects.get(object).copied().flatten()
    }

    /// How many objects were ever created.
    pub fn created(&self) -> usize {
        self.objects.len()
    }

    /// Live objects.
    pub fn live(&self) -> impl Iterator<Item = (usize, EntityId)> + '_ {
        self.objects.iter().enumerate().filter_map(|(i, e)| e.map(|e| (i, e)))
    }

    /// The members of relationship `rel` (by index) at `object`, in order.
    pub fn members(&self, rel: usize, object: usize) -> &[usize] {
        let r = self.rels[rel];
        self.list(r.link, r.end, object)
    }

    /// The objects at the far end of `link` from `object` at `end`.
    pub fn list(&self, link: usize, end: usize, object: usize) -> &[usize] {
        self.lists.get(&(link, end, object)).map_or(&[], Vec::as_slice)
    }

    /// How many links exist.
    pub fn link_count(&self) -> usize {
        self.lists.iter().filter(|((_, end, _), _)| *end == 0).map(|(_, v)| v.len()).sum()
    }

    fn unlink(&mut self, link: usize, source: usize, target: usize) {
        for (end, near, far) in [(0, source, target), (1, target, source)] {
            let list = self.lists.entry((link, end, near)).or_default();
            let at = list.iter().position(|&x| x == far).expect("model unlinks linked pairs");
            list.remove(at);
        }
    }

    fn link(&mut self, link: usize, source: usize, target: usize) {
        self.lists.entry((link, 0, source)).or_default().push(target);
        self.lists.entry((link, 1, target)).or_default().push(source);
    }

    /// (source, target) of a link between `near` at `end` and `far`.
    fn oriented(end: usize, near: usize, far: usize) -> (usize, usize) {
        if end == 0 { (near, far) } else { (far, near) }
    }

    fn unlink_from(&mut self, link: usize, end: usize, near: usize, far: usize) {
        let (s, t) = Self::oriented(end, near, far);
        self.unlink(link, s, t);
    }

    /// Links `near` to `far`, first emptying whichever side is a scalar.
    fn link_displacing(&mut self, r: Rel, near: usize, far: usize) {
        let other = 1 - r.end;
        if !self.many[r.link][r.end]
            && let Some(&old) = self.list(r.link, r.end, near).first()
        {
            self.unlink_from(r.link, r.end, near, old);
        }
        if !self.many[r.link][other]
            && let Some(&old) = self.list(r.link, other, far).first()
        {
            self.unlink_from(r.link, other, far, old);
        }
        let (s, t) = Self::oriented(r.end, near, far);
        self.link(r.link, s, t);
    }

    fn owner(&self, rel: usize, object: usize) -> Result<Rel, Refusal> {
        let r = self.rels[rel];
        match self.entity(object) {
            None => Err(Refusal::Stale),
            Some(e) if e != r.entity => Err(Refusal::NotOnEntity),
            Some(_) => Ok(r),
        }
    }

    fn member(&self, r: Rel, object: usize) -> Result<(), Refusal> {
        match self.entity(object) {
            None => Err(Refusal::Stale),
            Some(e) if e != r.target => Err(Refusal::WrongEntity),
            Some(_) => Ok(()),
        }
    }

    /// `append`.
    pub fn append(&mut self, rel: usize, object: usize, member: usize) -> Result<Outcome, Refusal> {
        let r = self.owner(rel, object)?;
        self.member(r, member)?;
        if !self.many[r.link][r.end] {
            return Err(Refusal::NotACollection);
        }
        if self.list(r.link, r.end, object).contains(&member) {
            return Ok(Outcome::Changed(false));
        }
        self.link_displacing(r, object, member);
        Ok(Outcome::Changed(true))
    }

    /// `remove_member`.
    pub fn remove_member(&mut self, rel: usize, object: usize, member: usize) -> Result<Outcome, Refusal> {
        let r = self.owner(rel, object)?;
        self.member(r, member)?;
        if !self.list(r.link, r.end, object).contains(&member) {
            return Ok(Outcome::Changed(false));
        }
        self.unlink_from(r.link, r.end, object, member);
        Ok(Outcome::Changed(true))
    }

    /// `set`.
    pub fn set(&mut self, rel: usize, object: usize, target: Option<usize>) -> Result<Outcome, Refusal> {
        let r = self.owner(rel, object)?;
        if let Some(t) = target {
            self.member(r, t)?;
        }
        if self.many[r.link][r.end] {
            return Err(Refusal::NotAScalar);
        }
        let previous = self.list(r.link, r.end, object).first().copied();
        match target {
            Some(t) if previous == Some(t) => {}
            Some(t) => self.link_displacing(r, object, t),
            None => {
                if let Some(p) = previous {
                    self.unlink_from(r.link, r.end, object, p);
                }
            }
        }
        Ok(Outcome::Previous(previous))
    }

    /// `replace`.
    pub fn replace(&mut self, rel: usize, object: usize, members: &[usize]) -> Result<Outcome, Refusal> {
        let r = self.owner(rel, object)?;
        for &m in members {
            self.member(r, m)?;
        }
        if !self.many[r.link][r.end] {
            return Err(Refusal::NotACollection);
        }
        let mut wanted = Vec::new();
        for &m in members {
            if !wanted.contains(&m) {
                wanted.push(m);
            }
        }
        for old in self.list(r.link, r.end, object).to_vec() {
            if !wanted.contains(&old) {
                self.unlink_from(r.link, r.end, object, old);
            }
        }
        for &m in &wanted {
            if !self.list(r.link, r.end, object).contains(&m) {
                self.link_displacing(r, object, m);
            }
        }
        self.lists.insert((r.link, r.end, object), wanted);
        Ok(Outcome::Done)
    }

    /// `clear`.
    pub fn clear(&mut self, rel: usize, object: usize) -> Result<Outcome, Refusal> {
        let r = self.owner(rel, object)?;
        let members = self.list(r.link, r.end, object).to_vec();
        for &m in &members {
            self.unlink_from(r.link, r.end, object, m);
        }
        Ok(Outcome::Count(members.len()))
    }

    /// `remove`: the object and all its links go.
    pub fn remove(&mut self, object: usize) -> Result<Outcome, Refusal> {
        let entity = self.entity(object).ok_or(Refusal::Stale)?;
        for &(link, end) in &self.ends_of[entity.index()].clone() {
            for far in self.list(link, end, object).to_vec() {
                self.unlink_from(link, end, object, far);
            }
        }
        self.objects[object] = None;
        Ok(Outcome::Done)
    }

    /// Writes an object's `name`.
    pub fn set_name(&mut self, object: usize, name: Option<String>) -> Result<Outcome, Refusal> {
        self.entity(object).ok_or(Refusal::Stale)?;
        self.names.insert(object, name);
        Ok(Outcome::Done)
    }

    /// An object's `name` (`None` for NULL or never written).
    pub fn name(&self, object: usize) -> Option<&str> {
        self.names.get(&object).and_then(|n| n.as_deref())
    }

    /// The end index of relationship `rel`.
    pub fn rel_end(&self, rel: usize) -> End {
        if self.rels[rel].end == 0 { End::Source } else { End::Target }
    }
}
