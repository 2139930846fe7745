//! `Registry::configure`: from declarations to a frozen [`Schema`].
//!
//! The steps run in a fixed order (tables, foreign keys, entities,
//! relationships, backrefs, pairing, directions, links, option checks) so
//! that the first error reported is always the same for the same mapping.

use std::collections::HashMap;

use super::decl::{CascadeSpec, ForeignKey, Relationship, Secondary, SideOptions};
use super::*;

pub(super) fn configure(reg: &Registry) -> Result<Schema, ConfigError> {
    let mut tables = build_tables(reg);
    let foreign_keys = build_foreign_keys(reg, &mut tables)?;
    let (entities, entity_names) = build_entities(reg, &mut tables)?;
    let ctx = Ctx { tables: &tables, foreign_keys: &foreign_keys, entities: &entities };
    let mut rels = declared_relationships(reg, &ctx, &entity_names)?;
    add_backrefs(&ctx, &mut rels)?;
    pair_back_populates(&ctx, &mut rels)?;
    let paths = infer_paths(&ctx, &rels)?;
    let (links, relationships) = build_links(&ctx, &rels, &paths)?;
    let mut entities = entities;
    for (index, rel) in relationships.iter().enumerate() {
        entities[rel.entity.index()].relationships.push(RelationshipId(index as u32));
    }
    let mut links = links;
    for (index, link) in links.iter_mut().enumerate() {
        // Ends are pushed separately so a self-referential link gets two slots.
        for end in [End::Source, End::Target] {
            let entity = link.ends[end.index()].entity;
            let slots = &mut entities[entity.index()].slots;
            link.ends[end.index()].slot = slots.len() as u32;
            slots.push((LinkId(index as u32), end));
        }
    }
    Ok(Schema {
        table_names: reg.table_names.clone(),
        tables,
        foreign_keys,
        entities,
        relationships,
        links,
        entity_names,
    })
}

struct Ctx<'a> {
    tables: &'a [TableDef],
    foreign_keys: &'a [ForeignKeyDef],
    entities: &'a [EntityDef],
}

impl Ctx<'_> {
    fn entity_table(&self, entity: EntityId) -> TableId {
        self.entities[entity.index()].table
    }

    fn table_name(&self, table: TableId) -> &str {
        &self.tables[table.index()].name
    }

    fn path(&self, rel: &WorkRel) -> String {
        format!("{}.{}", self.entities[rel.entity.index()].name, rel.name)
    }

    fn fk_columns(&self, fk: ForeignKeyId) -> String {
        let def = &self.foreign_keys[fk.index()];
        let table = &self.tables[def.table.index()];
        let cols: Vec<_> = def
            .columns
            .iter()
            .map(|&c| format!("{}.{}", table.name, table.columns[c as usize].name))
            .collect();
        cols.join("+")
    }

    /// Whether `name` (`"table.column"` or `"column"`) names a column of the foreign key.
    fn fk_named(&self, fk: ForeignKeyId, names: &[String]) -> bool {
        let def = &self.foreign_keys[fk.index()];
        let table = &self.tables[def.table.index()];
        def.columns.iter().all(|&c| {
            let column = &table.columns[c as usize].name;
            names.iter().any(|n| match n.split_once('.') {
                Some((t, col)) => t == table.name && col == column,
                None => n == column,
            })
        })
    }

    fn fks_between(&self, holder: TableId, referenced: TableId) -> Vec<ForeignKeyId> {
        self.tables[holder.index()]
            .foreign_keys
            .iter()
            .copied()
            .filter(|fk| self.foreign_keys[fk.index()].ref_table == referenced)
            .collect()
    }
}

fn build_tables(reg: &Registry) -> Vec<TableDef> {
    reg.tables
        .iter()
        .map(|decl| {
            let pk_count = decl.columns.iter().filter(|c| c.primary_key).count();
            let columns: Vec<ColumnDef> = decl
                .columns
                .iter()
                .map(|c| ColumnDef {
                    name: c.name.clone(),
                    ty: c.ty,
                    nullable: !c.primary_key && c.nullable.unwrap_or(true),
                    primary_key: c.primary_key,
                    autoincrement: c.primary_key
                        && c.autoincrement.unwrap_or(pk_count == 1 && c.ty == ColumnType::Integer),
                    unique: c.unique,
                    default: c.default.clone(),
                })
                .collect();
            let primary_key =
                (0..columns.len() as u32).filter(|&i| columns[i as usize].primary_key).collect();
            let uniques =
                (0..columns.len() as u32).filter(|&i| columns[i as usize].unique).map(|i| vec![i]).collect();
            TableDef {
                name: decl.name.clone(),
                columns,
                primary_key,
                uniques,
                foreign_keys: Vec::new(),
                entity: None,
            }
        })
        .collect()
}

fn resolve_columns(
    table: &TableDef,
    names: &[String],
    context: impl Fn() -> String,
) -> Result<Vec<u32>, ConfigError> {
    names
        .iter()
        .map(|name| {
            table.column_index(name).ok_or_else(|| ConfigError::UnknownColumn {
                context: context(),
                table: table.name.clone(),
                column: name.clone(),
            })
        })
        .collect()
}

fn build_foreign_keys(reg: &Registry, tables: &mut [TableDef]) -> Result<Vec<ForeignKeyDef>, ConfigError> {
    let mut out = Vec::new();
    for (table_index, decl) in reg.tables.iter().enumerate() {
        let table_name = &decl.name;
        for unique in &decl.uniques {
            let cols = resolve_columns(&tables[table_index], unique, || {
                format!("a unique constraint on table '{table_name}'")
            })?;
            tables[table_index].uniques.push(cols);
        }
        let mut declared: Vec<ForeignKey> = Vec::new();
        for column in &decl.columns {
            if let Some((target, on_delete)) = &column.foreign_key {
                let (ref_table, ref_column) = target
                    .split_once('.')
                    .filter(|(t, c)| !t.is_empty() && !c.is_empty() && !c.contains('.'))
                    .ok_or_else(|| ConfigError::MalformedForeignKey {
                        table: table_name.clone(),
                        column: column.name.clone(),
                        target: target.clone(),
                    })?;
                declared.push(
                    ForeignKey::new([column.name.clone()], ref_table, [ref_column]).on_delete(*on_delete),
                );
            }
        }
        declared.extend(decl.foreign_keys.iter().cloned());
        for fk in declared {
            let first = fk.columns.first().cloned().unwrap_or_default();
            let columns = resolve_columns(&tables[table_index], &fk.columns, || {
                format!("a foreign key on table '{table_name}'")
            })?;
            let ref_table = reg.table_names.get(&fk.ref_table).copied().ok_or_else(|| {
                ConfigError::ForeignKeyUnknownTable {
                    table: table_name.clone(),
                    column: first.clone(),
                    target_table: fk.ref_table.clone(),
                }
            })?;
            let target = &tables[ref_table.index()];
            let ref_columns = fk
                .ref_columns
                .iter()
                .map(|name| {
                    target.column_index(name).ok_or_else(|| ConfigError::ForeignKeyUnknownColumn {
                        table: table_name.clone(),
                        column: first.clone(),
                        target_table: fk.ref_table.clone(),
                        target_column: name.clone(),
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let target_path = format!("{}.{}", fk.ref_table, fk.ref_columns.join("+"));
            let mismatch = |reason: String| ConfigError::ForeignKeyMismatch {
                table: table_name.clone(),
                column: first.clone(),
                target: target_path.clone(),
                reason,
            };
            if columns.is_empty() || columns.len() != ref_columns.len() {
                return Err(mismatch(format!(
                    "{} columns reference {} columns",
                    columns.len(),
                    ref_columns.len()
                )));
            }
            for (&c, &r) in columns.iter().zip(&ref_columns) {
                let (own, referenced) =
                    (&tables[table_index].columns[c as usize], &target.columns[r as usize]);
                if own.ty != referenced.ty {
                    return Err(mismatch(format!(
                        "{} is {} but {} is {}",
                        own.name, own.ty, referenced.name, referenced.ty
                    )));
                }
            }
            let mut sorted = ref_columns.clone();
            sorted.sort_unstable();
            let mut pk = target.primary_key.clone();
            pk.sort_unstable();
            let is_key = pk == sorted
                || target.uniques.iter().any(|u| {
                    let mut u = u.clone();
                    u.sort_unstable();
                    u == sorted
                });
            if !is_key {
                return Err(ConfigError::ForeignKeyNotUnique {
                    table: table_name.clone(),
                    column: first,
                    target: target_path,
                });
            }
            let id = ForeignKeyId(out.len() as u32);
            tables[table_index].foreign_keys.push(id);
            out.push(ForeignKeyDef {
                table: TableId(table_index as u32),
                columns,
                ref_table,
                ref_columns,
                on_delete: fk.on_delete,
            });
        }
    }
    Ok(out)
}

fn build_entities(
    reg: &Registry,
    tables: &mut [TableDef],
) -> Result<(Vec<EntityDef>, HashMap<String, EntityId>), ConfigError> {
    let mut entities = Vec::new();
    let mut names = HashMap::new();
    for (index, decl) in reg.entities.iter().enumerate() {
        let id = EntityId(index as u32);
        let table = reg.table_names.get(&decl.table).copied().ok_or_else(|| {
            ConfigError::UnknownEntityTable { entity: decl.name.clone(), table: decl.table.clone() }
        })?;
        let def = &mut tables[table.index()];
        if let Some(first) = def.entity {
            return Err(ConfigError::TableMappedTwice {
                table: def.name.clone(),
                first: reg.entities[first.index()].name.clone(),
                second: decl.name.clone(),
            });
        }
        if def.primary_key.is_empty() {
            return Err(ConfigError::NoPrimaryKey { entity: decl.name.clone(), table: def.name.clone() });
        }
        def.entity = Some(id);
        names.insert(decl.name.clone(), id);
        entities.push(EntityDef {
            name: decl.name.clone(),
            table,
            relationships: Vec::new(),
            slots: Vec::new(),
        });
    }
    Ok((entities, names))
}

/// A relationship while it is being configured.
struct WorkRel {
    entity: EntityId,
    name: String,
    target: EntityId,
    back_populates: Option<String>,
    secondary: Option<TableId>,
    foreign_keys: Vec<String>,
    remote_side: Vec<String>,
    options: SideOptions,
    cascade: Cascade,
    backref: Option<super::decl::Backref>,
    from_backref: bool,
    pair: Option<usize>,
}

fn name_taken(ctx: &Ctx<'_>, rels: &[WorkRel], entity: EntityId, name: &str) -> Option<String> {
    let table = &ctx.tables[ctx.entity_table(entity).index()];
    if table.column_index(name).is_some() {
        return Some(format!("column {}.{name}", table.name));
    }
    rels.iter()
        .find(|r| r.entity == entity && r.name == name)
        .map(|r| format!("relationship {}", ctx.path(r)))
}

fn parse_cascade(spec: &Option<CascadeSpec>, path: impl Fn() -> String) -> Result<Cascade, ConfigError> {
    match spec {
        None => Ok(Cascade::default()),
        Some(CascadeSpec::Flags(flags)) => Ok(*flags),
        Some(CascadeSpec::Text(text)) => {
            Cascade::parse(text).map_err(|word| ConfigError::InvalidCascade { relationship: path(), word })
        }
    }
}

fn declared_relationships(
    reg: &Registry,
    ctx: &Ctx<'_>,
    entity_names: &HashMap<String, EntityId>,
) -> Result<Vec<WorkRel>, ConfigError> {
    let mut rels: Vec<WorkRel> = Vec::new();
    for (index, decl) in reg.entities.iter().enumerate() {
        let entity = EntityId(index as u32);
        for (name, spec) in &decl.relationships {
            let path = || format!("{}.{name}", decl.name);
            if let Some(taken_by) = name_taken(ctx, &rels, entity, name) {
                return Err(ConfigError::DuplicateRelationship { relationship: path(), taken_by });
            }
            let Relationship {
                target,
                back_populates,
                backref,
                secondary,
                foreign_keys,
                remote_side,
                options,
            } = spec;
            let target = entity_names
                .get(target)
                .copied()
                .ok_or_else(|| ConfigError::UnknownTarget { relationship: path(), target: target.clone() })?;
            if backref.is_some() && back_populates.is_some() {
                return Err(ConfigError::BackrefAndBackPopulates { relationship: path() });
            }
            let secondary = match secondary {
                None => None,
                Some(Secondary::Table(id)) if id.index() < ctx.tables.len() => Some(*id),
                Some(Secondary::Table(id)) => {
                    return Err(ConfigError::UnknownSecondary {
                        relationship: path(),
                        table: format!("{id:?}"),
                    });
                }
                Some(Secondary::Name(table)) => Some(reg.table_id(table).ok_or_else(|| {
                    ConfigError::UnknownSecondary { relationship: path(), table: table.clone() }
                })?),
                Some(Secondary::Deferred(resolve)) => Some(
                    resolve(reg)
                        .filter(|id| id.index() < ctx.tables.len())
                        .ok_or_else(|| ConfigError::SecondaryUnresolved { relationship: path() })?,
                ),
            };
            let cascade = parse_cascade(&options.cascade, path)?;
            rels.push(WorkRel {
                entity,
                name: name.clone(),
                target,
                back_populates: back_populates.clone(),
                secondary,
                foreign_keys: foreign_keys.clone(),
                remote_side: remote_side.clone(),
                options: options.clone(),
                cascade,
                backref: backref.clone(),
                from_backref: false,
                pair: None,
            });
        }
    }
    Ok(rels)
}

fn add_backrefs(ctx: &Ctx<'_>, rels: &mut Vec<WorkRel>) -> Result<(), ConfigError> {
    for i in 0..rels.len() {
        let Some(backref) = rels[i].backref.clone() else {
            continue;
        };
        let target = rels[i].target;
        if let Some(taken_by) = name_taken(ctx, rels, target, &backref.name) {
            return Err(ConfigError::BackrefConflict {
                relationship: ctx.path(&rels[i]),
                backref: backref.name,
                target: ctx.entities[target.index()].name.clone(),
                taken_by,
            });
        }
        let target_name = &ctx.entities[target.index()].name;
        let cascade = parse_cascade(&backref.options.cascade, || format!("{target_name}.{}", backref.name))?;
        let j = rels.len();
        rels[i].pair = Some(j);
        let declaring = &rels[i];
        rels.push(WorkRel {
            entity: target,
            name: backref.name,
            target: declaring.entity,
            back_populates: Some(declaring.name.clone()),
            secondary: declaring.secondary,
            foreign_keys: Vec::new(),
            remote_side: Vec::new(),
            options: backref.options,
            cascade,
            backref: None,
            from_backref: true,
            pair: Some(i),
        });
    }
    Ok(())
}

fn pair_back_populates(ctx: &Ctx<'_>, rels: &mut [WorkRel]) -> Result<(), ConfigError> {
    for i in 0..rels.len() {
        if rels[i].pair.is_some() {
            continue;
        }
        let Some(other) = rels[i].back_populates.clone() else {
            continue;
        };
        let target = rels[i].target;
        let j = rels.iter().position(|r| r.entity == target && r.name == other).ok_or_else(|| {
            ConfigError::BackPopulatesMissing {
                relationship: ctx.path(&rels[i]),
                back_populates: other.clone(),
                target: ctx.entities[target.index()].name.clone(),
            }
        })?;
        let points = if rels[j].target != rels[i].entity {
            Some(format!("targets entity '{}'", ctx.entities[rels[j].target.index()].name))
        } else {
            match &rels[j].back_populates {
                None => Some("does not name it back (one-sided back_populates)".to_owned()),
                Some(back) if *back != rels[i].name => Some(format!("names '{back}' instead")),
                Some(_) => None,
            }
        };
        if let Some(points) = points {
            return Err(ConfigError::BackPopulatesNotReciprocal {
                relationship: ctx.path(&rels[i]),
                other,
                other_full: ctx.path(&rels[j]),
                points,
            });
        }
        rels[i].pair = Some(j);
        rels[j].pair = Some(i);
    }
    Ok(())
}

/// How a relationship reaches its target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Path {
    /// Through one foreign key; `holds` when this side's table holds it (many-to-one).
    Fk { fk: ForeignKeyId, holds: bool },
    /// Through an association table: `own` references this side, `other` the target.
    Secondary { table: TableId, own: ForeignKeyId, other: ForeignKeyId },
}

impl Path {
    fn inverse(self) -> Path {
        match self {
            Path::Fk { fk, holds } => Path::Fk { fk, holds: !holds },
            Path::Secondary { table, own, other } => Path::Secondary { table, own: other, other: own },
        }
    }
}

fn check_names(
    ctx: &Ctx<'_>,
    rel: &WorkRel,
    names: &[String],
    tables: &[TableId],
    what: &str,
) -> Result<(), ConfigError> {
    for name in names {
        let found = tables.iter().any(|&t| {
            let table = &ctx.tables[t.index()];
            match name.split_once('.') {
                Some((tn, cn)) => tn == table.name && table.column_index(cn).is_some(),
                None => table.column_index(name).is_some(),
            }
        });
        if !found {
            return Err(ConfigError::UnknownColumn {
                context: format!("{what} of relationship {}", ctx.path(rel)),
                table: tables.iter().map(|&t| ctx.table_name(t)).collect::<Vec<_>>().join("' or '"),
                column: name.clone(),
            });
        }
    }
    Ok(())
}

fn infer_path(ctx: &Ctx<'_>, rel: &WorkRel) -> Result<Path, ConfigError> {
    let own = ctx.entity_table(rel.entity);
    let target = ctx.entity_table(rel.target);
    let ambiguous = |fks: &[ForeignKeyId]| ConfigError::AmbiguousForeignKeyPath {
        relationship: ctx.path(rel),
        candidates: fks.iter().map(|&fk| ctx.fk_columns(fk)).collect::<Vec<_>>().join(", "),
    };
    check_names(ctx, rel, &rel.remote_side, &[target], "remote_side")?;
    if let Some(secondary) = rel.secondary {
        check_names(ctx, rel, &rel.foreign_keys, &[secondary], "foreign_keys")?;
        let missing = |t: TableId| ConfigError::SecondaryMissingForeignKey {
            relationship: ctx.path(rel),
            secondary: ctx.table_name(secondary).to_owned(),
            missing: ctx.table_name(t).to_owned(),
        };
        let mut own_fks = ctx.fks_between(secondary, own);
        if own_fks.is_empty() {
            return Err(missing(own));
        }
        let mut other_fks = ctx.fks_between(secondary, target);
        if other_fks.is_empty() {
            return Err(missing(target));
        }
        if !rel.foreign_keys.is_empty() {
            own_fks.retain(|&fk| ctx.fk_named(fk, &rel.foreign_keys));
            other_fks.retain(|fk| !own_fks.contains(fk));
        } else if own == target {
            // Both foreign keys reference the same table: only foreign_keys can say which is ours.
            return Err(ambiguous(&own_fks));
        }
        match (own_fks.as_slice(), other_fks.as_slice()) {
            ([own_fk], [other_fk]) => {
                Ok(Path::Secondary { table: secondary, own: *own_fk, other: *other_fk })
            }
            ([], _) => Err(missing(own)),
            (_, []) => Err(missing(target)),
            ([_], many) | (many, _) => Err(ambiguous(many)),
        }
    } else {
        check_names(ctx, rel, &rel.foreign_keys, &[own, target], "foreign_keys")?;
        let mut candidates: Vec<Path> = if own == target {
            let holds = !rel.remote_side.is_empty();
            ctx.fks_between(own, own).into_iter().map(|fk| Path::Fk { fk, holds }).collect()
        } else {
            let m2o = ctx.fks_between(own, target).into_iter().map(|fk| Path::Fk { fk, holds: true });
            let o2m = ctx.fks_between(target, own).into_iter().map(|fk| Path::Fk { fk, holds: false });
            m2o.chain(o2m).collect()
        };
        if !rel.foreign_keys.is_empty() {
            candidates.retain(|p| matches!(p, Path::Fk { fk, .. } if ctx.fk_named(*fk, &rel.foreign_keys)));
        }
        match candidates.as_slice() {
            [] => Err(ConfigError::NoForeignKeyPath {
                relationship: ctx.path(rel),
                table: ctx.table_name(own).to_owned(),
                target_table: ctx.table_name(target).to_owned(),
            }),
            [one] => Ok(*one),
            many => Err(ambiguous(
                &many
                    .iter()
                    .filter_map(|p| match p {
                        Path::Fk { fk, .. } => Some(*fk),
                        Path::Secondary { .. } => None,
                    })
                    .collect::<Vec<_>>(),
            )),
        }
    }
}

fn infer_paths(ctx: &Ctx<'_>, rels: &[WorkRel]) -> Result<Vec<Path>, ConfigError> {
    let mut paths: Vec<Option<Path>> = vec![None; rels.len()];
    for i in 0..rels.len() {
        if paths[i].is_some() {
            continue;
        }
        let Some(j) = rels[i].pair else {
            paths[i] = Some(infer_path(ctx, &rels[i])?);
            continue;
        };
        let (a, b) = if rels[j].from_backref {
            // A backref has no options of its own that could change the path: it mirrors its declarer.
            let a = infer_path(ctx, &rels[i])?;
            (a, a.inverse())
        } else {
            let a = infer_path(ctx, &rels[i]);
            let b = infer_path(ctx, &rels[j]);
            match (a, b) {
                (Ok(a), Ok(b)) => (a, b),
                (Ok(a), Err(ConfigError::AmbiguousForeignKeyPath { .. })) => (a, a.inverse()),
                (Err(ConfigError::AmbiguousForeignKeyPath { .. }), Ok(b)) => (b.inverse(), b),
                (Err(e), _) | (_, Err(e)) => return Err(e),
            }
        };
        let mismatch = |reason: &str| ConfigError::BackPopulatesMismatch {
            relationship: ctx.path(&rels[i]),
            other: ctx.path(&rels[j]),
            reason: reason.to_owned(),
        };
        match (a, b) {
            (Path::Fk { fk: fa, holds: ha }, Path::Fk { fk: fb, holds: hb }) => {
                if fa != fb {
                    return Err(mismatch(&format!(
                        "use different foreign keys ({} and {})",
                        ctx.fk_columns(fa),
                        ctx.fk_columns(fb)
                    )));
                }
                if ha == hb {
                    if !ha {
                        return Err(ConfigError::AmbiguousSelfReferential {
                            relationship: ctx.path(&rels[i]),
                            other: ctx.path(&rels[j]),
                        });
                    }
                    return Err(mismatch("both are many-to-one; remote_side belongs on one side only"));
                }
            }
            (Path::Secondary { .. }, Path::Secondary { .. }) => {
                if a.inverse() != b {
                    return Err(mismatch("use different secondary tables or foreign keys"));
                }
            }
            _ => return Err(mismatch("only one of them has a secondary table")),
        }
        paths[i] = Some(a);
        paths[j] = Some(b);
    }
    Ok(paths.into_iter().map(|p| p.expect("every relationship got a path")).collect())
}

fn build_links(
    ctx: &Ctx<'_>,
    rels: &[WorkRel],
    paths: &[Path],
) -> Result<(Vec<LinkDef>, Vec<RelationshipDef>), ConfigError> {
    let mut links = Vec::new();
    let mut placed: Vec<Option<(LinkId, End, bool)>> = vec![None; rels.len()];
    for i in 0..rels.len() {
        if placed[i].is_some() {
            continue;
        }
        let j = rels[i].pair;
        let link = LinkId(links.len() as u32);
        let (kind, i_end) = match paths[i] {
            Path::Fk { fk, holds } => {
                (LinkKind::ForeignKey(fk), if holds { End::Source } else { End::Target })
            }
            Path::Secondary { table, own, other } => {
                (LinkKind::Secondary { table, foreign_keys: [own, other] }, End::Source)
            }
        };
        let is_fk = matches!(kind, LinkKind::ForeignKey(_));
        let many_of = |rel: Option<usize>, end: End| -> Result<bool, ConfigError> {
            let uselist = rel.and_then(|r| rels[r].options.uselist);
            if is_fk && end == End::Source {
                if uselist == Some(true) {
                    return Err(ConfigError::InvalidUselist {
                        relationship: ctx.path(&rels[rel.expect("uselist comes from a relationship")]),
                    });
                }
                Ok(false)
            } else {
                Ok(uselist.unwrap_or(true))
            }
        };
        let i_entity = rels[i].entity;
        let other_entity = rels[i].target;
        let mut ends = [
            LinkEnd {
                entity: i_entity,
                relationship: Some(RelationshipId(i as u32)),
                many: many_of(Some(i), i_end)?,
                slot: 0,
            },
            LinkEnd {
                entity: other_entity,
                relationship: j.map(|j| RelationshipId(j as u32)),
                many: many_of(j, i_end.opposite())?,
                slot: 0,
            },
        ];
        if i_end == End::Target {
            ends.swap(0, 1);
        }
        placed[i] = Some((link, i_end, ends[i_end.index()].many));
        if let Some(j) = j {
            placed[j] = Some((link, i_end.opposite(), ends[i_end.opposite().index()].many));
        }
        links.push(LinkDef { kind, ends });
    }
    let mut out = Vec::with_capacity(rels.len());
    for (i, rel) in rels.iter().enumerate() {
        let (link, end, many) = placed[i].expect("every relationship was placed in a link");
        let direction = match (links[link.index()].kind, end) {
            (LinkKind::Secondary { .. }, _) => Direction::ManyToMany,
            (LinkKind::ForeignKey(_), End::Source) => Direction::ManyToOne,
            (LinkKind::ForeignKey(_), End::Target) => Direction::OneToMany,
        };
        let path = ctx.path(rel);
        if rel.cascade.contains(Cascade::DELETE_ORPHAN)
            && direction != Direction::OneToMany
            && !rel.options.single_parent
        {
            return Err(ConfigError::DeleteOrphanNeedsSingleParent {
                relationship: path,
                direction: direction.as_str(),
            });
        }
        if rel.options.passive_deletes == PassiveDeletes::All && rel.cascade.contains(Cascade::DELETE) {
            return Err(ConfigError::PassiveDeletesAllWithDelete { relationship: path });
        }
        out.push(RelationshipDef {
            name: rel.name.clone(),
            entity: rel.entity,
            target: rel.target,
            link,
            end,
            direction,
            uselist: many,
            reverse: rel.pair.map(|p| RelationshipId(p as u32)),
            cascade: rel.cascade,
            passive_deletes: rel.options.passive_deletes,
            single_parent: rel.options.single_parent,
            post_update: rel.options.post_update,
            from_backref: rel.from_backref,
        });
    }
    Ok((links, out))
}
