//! The type catalog: what each type OID is (built-in, enum, domain, array, range, extension
//! base type), so the value decoder knows how to read a column's text. Built-in types are known
//! statically by their fixed OIDs; user-defined and extension types are loaded from `pg_type`.

use std::collections::HashMap;

use crate::error::SourceError;

/// What a type is, as far as decoding needs to know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TypeKind {
    /// A built-in or extension base type, decoded by its name.
    Base,
    /// An enum type.
    Enum,
    /// A domain over `base`.
    Domain { base: u32 },
    /// An array of `element`, with its delimiter (`,` for all but `box`).
    Array { element: u32, delimiter: u8 },
    /// A range over `subtype`.
    Range { subtype: u32 },
    /// Anything else (composite, pseudo): its text is kept.
    Other,
}

/// One type's entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TypeInfo {
    /// The type's OID (`pg_type.oid`).
    pub oid: u32,
    /// The schema the type lives in (`pg_catalog` for built-ins).
    pub schema: String,
    /// `typname` for types in `pg_catalog`, `schema.typname` for every other schema.
    pub name: String,
    /// How values of the type are read.
    pub kind: TypeKind,
}

/// The base types sluice decodes into a typed value. Everything a column's type resolves to,
/// once domains are peeled off, is one of these, an enum, an array, a range, or unknown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ScalarType {
    Bool,
    Int2,
    Int4,
    Int8,
    /// `oid`: unsigned 32 bits, decoded as `Int64`.
    Oid,
    Float4,
    Float8,
    Numeric,
    Money,
    /// `text`, `varchar`, `bpchar`, `name`, `"char"` and the `citext` extension type.
    Text,
    Bytea,
    Date,
    Time,
    TimeTz,
    Timestamp,
    TimestampTz,
    Interval,
    Uuid,
    Json,
    Jsonb,
    Xml,
    Inet,
    Cidr,
    MacAddr,
    MacAddr8,
    Bit,
    VarBit,
    Point,
    Line,
    Lseg,
    Box,
    Path,
    Polygon,
    Circle,
    /// The `hstore` extension type.
    Hstore,
}

impl ScalarType {
    /// The scalar type of a base type, by its schema and bare `typname`. Built-in names count
    /// only in `pg_catalog`; extension types (`hstore`, `citext`) are recognised in any schema,
    /// since `CREATE EXTENSION ... SCHEMA` puts them wherever the user asks.
    pub fn from_name(schema: &str, typname: &str) -> Option<ScalarType> {
        if schema != "pg_catalog" {
            return match typname {
                "hstore" => Some(ScalarType::Hstore),
                "citext" => Some(ScalarType::Text),
                _ => None,
            };
        }
        Some(match typname {
            "bool" => ScalarType::Bool,
            "int2" => ScalarType::Int2,
            "int4" => ScalarType::Int4,
            "int8" => ScalarType::Int8,
            "oid" => ScalarType::Oid,
            "float4" => ScalarType::Float4,
            "float8" => ScalarType::Float8,
            "numeric" => ScalarType::Numeric,
            "money" => ScalarType::Money,
            "text" | "varchar" | "bpchar" | "name" | "char" => ScalarType::Text,
            "bytea" => ScalarType::Bytea,
            "date" => ScalarType::Date,
            "time" => ScalarType::Time,
            "timetz" => ScalarType::TimeTz,
            "timestamp" => ScalarType::Timestamp,
            "timestamptz" => ScalarType::TimestampTz,
            "interval" => ScalarType::Interval,
            "uuid" => ScalarType::Uuid,
            "json" => ScalarType::Json,
            "jsonb" => ScalarType::Jsonb,
            "xml" => ScalarType::Xml,
            "inet" => ScalarType::Inet,
            "cidr" => ScalarType::Cidr,
            "macaddr" => ScalarType::MacAddr,
            "macaddr8" => ScalarType::MacAddr8,
            "bit" => ScalarType::Bit,
            "varbit" => ScalarType::VarBit,
            "point" => ScalarType::Point,
            "line" => ScalarType::Line,
            "lseg" => ScalarType::Lseg,
            "box" => ScalarType::Box,
            "path" => ScalarType::Path,
            "polygon" => ScalarType::Polygon,
            "circle" => ScalarType::Circle,
            _ => return None,
        })
    }

    /// The scalar type of a built-in OID, without a catalog lookup: the hot path for the common
    /// types. Built-in OIDs are fixed by `pg_type.dat`, so this can never disagree with the
    /// catalog (a unit test checks it against the built-in table).
    pub fn from_builtin_oid(oid: u32) -> Option<ScalarType> {
        Some(match oid {
            16 => ScalarType::Bool,
            17 => ScalarType::Bytea,
            18 | 19 | 25 | 1042 | 1043 => ScalarType::Text,
            20 => ScalarType::Int8,
            21 => ScalarType::Int2,
            23 => ScalarType::Int4,
            26 => ScalarType::Oid,
            114 => ScalarType::Json,
            142 => ScalarType::Xml,
            600 => ScalarType::Point,
            601 => ScalarType::Lseg,
            602 => ScalarType::Path,
            603 => ScalarType::Box,
            604 => ScalarType::Polygon,
            628 => ScalarType::Line,
            650 => ScalarType::Cidr,
            700 => ScalarType::Float4,
            701 => ScalarType::Float8,
            718 => ScalarType::Circle,
            774 => ScalarType::MacAddr8,
            790 => ScalarType::Money,
            829 => ScalarType::MacAddr,
            869 => ScalarType::Inet,
            1082 => ScalarType::Date,
            1083 => ScalarType::Time,
            1114 => ScalarType::Timestamp,
            1184 => ScalarType::TimestampTz,
            1186 => ScalarType::Interval,
            1266 => ScalarType::TimeTz,
            1560 => ScalarType::Bit,
            1562 => ScalarType::VarBit,
            1700 => ScalarType::Numeric,
            2950 => ScalarType::Uuid,
            3802 => ScalarType::Jsonb,
            _ => return None,
        })
    }
}

/// A type as decoding sees it: domains resolved to their base, base types to their scalar type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResolvedType {
    Scalar(ScalarType),
    /// An enum: values are their labels.
    Enum,
    /// An array of `element` (itself unresolved: it may be a domain), split on `delimiter`.
    Array {
        element: u32,
        delimiter: u8,
    },
    /// A range over `subtype` (unresolved).
    Range {
        subtype: u32,
    },
    /// Not decodable: the text is kept as [`sluice_api::Value::Unknown`].
    Unknown,
}

/// Domains over domains are legal; a chain longer than this is treated as a catalog cycle
/// (impossible in a sane catalog, but the catalog can be fed by anyone) and resolves to unknown.
const MAX_DOMAIN_DEPTH: usize = 32;

/// One catalog entry: the public info plus its scalar type, computed once on insert so decoding
/// never matches on names.
#[derive(Clone, Debug)]
struct Entry {
    info: TypeInfo,
    scalar: Option<ScalarType>,
}

/// OID -> type info for every type decoding may meet.
#[derive(Clone, Debug, Default)]
pub struct TypeCatalog {
    types: HashMap<u32, Entry>,
}

impl TypeCatalog {
    /// The built-in types only: every base, array and range type of `pg_catalog`.
    pub fn builtin() -> Self {
        let mut catalog = TypeCatalog {
            types: HashMap::with_capacity(BUILTIN_TYPES.len() * 2),
        };
        for builtin in BUILTIN_TYPES {
            catalog.insert(TypeInfo {
                oid: builtin.oid,
                schema: "pg_catalog".to_string(),
                name: builtin.name.to_string(),
                kind: builtin.kind.clone(),
            });
        }
        catalog
    }

    /// The built-in types plus every other type of the connected database (enums, domains,
    /// arrays, ranges, extension base types such as `hstore` and `citext`).
    pub async fn load(client: &tokio_postgres::Client) -> Result<TypeCatalog, SourceError> {
        let mut catalog = TypeCatalog::builtin();
        // An array is the type its element names as `typarray`: this excludes `int2vector` and
        // `oidvector`, whose `typelem` is set but whose text form is not an array literal. The
        // delimiter that splits an array's text is its element type's.
        let rows = client
            .query(
                "SELECT t.oid, n.nspname, t.typname, t.typtype, t.typbasetype, \
                        CASE WHEN e.typarray = t.oid THEN t.typelem ELSE 0::oid END, \
                        coalesce(e.typdelim, ','::\"char\"), coalesce(r.rngsubtype, 0::oid) \
                 FROM pg_catalog.pg_type t \
                 JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace \
                 LEFT JOIN pg_catalog.pg_type e ON e.oid = t.typelem \
                 LEFT JOIN pg_catalog.pg_range r ON r.rngtypid = t.oid",
                &[],
            )
            .await?;
        for row in rows {
            let oid: u32 = row.try_get(0)?;
            if catalog.types.contains_key(&oid) {
                continue;
            }
            let schema: String = row.try_get(1)?;
            let typname: String = row.try_get(2)?;
            let typtype: i8 = row.try_get(3)?;
            let base: u32 = row.try_get(4)?;
            let element: u32 = row.try_get(5)?;
            let delimiter: i8 = row.try_get(6)?;
            let subtype: u32 = row.try_get(7)?;
            let kind = match typtype as u8 {
                b'e' => TypeKind::Enum,
                b'd' => TypeKind::Domain { base },
                b'r' if subtype != 0 => TypeKind::Range { subtype },
                b'b' if element != 0 => TypeKind::Array {
                    element,
                    delimiter: delimiter as u8,
                },
                b'b' => TypeKind::Base,
                _ => TypeKind::Other,
            };
            let name = qualified_name(&schema, &typname);
            catalog.insert(TypeInfo {
                oid,
                schema,
                name,
                kind,
            });
        }
        Ok(catalog)
    }

    /// The type's entry, if the catalog knows it.
    pub fn get(&self, oid: u32) -> Option<&TypeInfo> {
        self.types.get(&oid).map(|entry| &entry.info)
    }

    /// The type's name as events show it (`int4`, `_text`, `public.mood`), or `oid:<n>`.
    pub fn type_name(&self, oid: u32) -> String {
        self.get(oid)
            .map_or_else(|| format!("oid:{oid}"), |t| t.name.clone())
    }

    /// Add or replace entries (user-defined types loaded from the server, pgoutput Type messages).
    pub fn insert(&mut self, info: TypeInfo) {
        let scalar = match info.kind {
            TypeKind::Base => ScalarType::from_name(&info.schema, bare_name(&info)),
            _ => None,
        };
        self.types.insert(info.oid, Entry { info, scalar });
    }

    /// Record what a pgoutput `Type` message says: a known type is renamed (its kind kept), an
    /// unknown one is added as a base type, which decodes when it is an extension type sluice
    /// knows by name (`hstore`, `citext`) and is kept as text otherwise.
    pub fn note_type(&mut self, oid: u32, schema: &str, typname: &str) {
        let kind = self
            .get(oid)
            .map_or(TypeKind::Base, |known| known.kind.clone());
        let name = qualified_name(schema, typname);
        self.insert(TypeInfo {
            oid,
            schema: schema.to_string(),
            name,
            kind,
        });
    }

    /// How a value of this type decodes: domains are followed to their base (bounded, so a
    /// cyclic catalog resolves to unknown), base types map to their scalar type.
    pub fn resolve(&self, oid: u32) -> ResolvedType {
        if let Some(scalar) = ScalarType::from_builtin_oid(oid) {
            return ResolvedType::Scalar(scalar);
        }
        let mut current = oid;
        for _ in 0..MAX_DOMAIN_DEPTH {
            let Some(entry) = self.types.get(&current) else {
                return ResolvedType::Unknown;
            };
            match &entry.info.kind {
                TypeKind::Base => {
                    return entry
                        .scalar
                        .map_or(ResolvedType::Unknown, ResolvedType::Scalar)
                }
                TypeKind::Enum => return ResolvedType::Enum,
                TypeKind::Domain { base } => current = *base,
                TypeKind::Array { element, delimiter } => {
                    return ResolvedType::Array {
                        element: *element,
                        delimiter: *delimiter,
                    }
                }
                TypeKind::Range { subtype } => return ResolvedType::Range { subtype: *subtype },
                TypeKind::Other => return ResolvedType::Unknown,
            }
        }
        ResolvedType::Unknown
    }

    /// The type a domain (or chain of domains) is defined over; the OID itself for any other
    /// type, or `None` when the chain is broken or cyclic.
    pub fn base_type(&self, oid: u32) -> Option<u32> {
        let mut current = oid;
        for _ in 0..MAX_DOMAIN_DEPTH {
            match self.get(current)?.kind {
                TypeKind::Domain { base } => current = base,
                _ => return Some(current),
            }
        }
        None
    }

    /// How many types the catalog knows.
    pub fn len(&self) -> usize {
        self.types.len()
    }

    /// Whether the catalog knows no type at all.
    pub fn is_empty(&self) -> bool {
        self.types.is_empty()
    }
}

/// The catalog's naming rule: `typname` in `pg_catalog`, `schema.typname` elsewhere.
pub fn qualified_name(schema: &str, typname: &str) -> String {
    if schema == "pg_catalog" {
        typname.to_string()
    } else {
        format!("{schema}.{typname}")
    }
}

/// The `typname` part of an entry's name (the name may or may not be schema-qualified).
fn bare_name(info: &TypeInfo) -> &str {
    info.name
        .strip_prefix(info.schema.as_str())
        .and_then(|rest| rest.strip_prefix('.'))
        .unwrap_or(&info.name)
}

/// A built-in type of `pg_catalog`, as listed in `pg_type.dat`.
struct BuiltinType {
    oid: u32,
    name: &'static str,
    kind: TypeKind,
}

const fn base(oid: u32, name: &'static str) -> BuiltinType {
    BuiltinType {
        oid,
        name,
        kind: TypeKind::Base,
    }
}

const fn array(oid: u32, name: &'static str, element: u32) -> BuiltinType {
    BuiltinType {
        oid,
        name,
        kind: TypeKind::Array {
            element,
            delimiter: b',',
        },
    }
}

const fn array_with(oid: u32, name: &'static str, element: u32, delimiter: u8) -> BuiltinType {
    BuiltinType {
        oid,
        name,
        kind: TypeKind::Array { element, delimiter },
    }
}

const fn range(oid: u32, name: &'static str, subtype: u32) -> BuiltinType {
    BuiltinType {
        oid,
        name,
        kind: TypeKind::Range { subtype },
    }
}

const fn other(oid: u32, name: &'static str) -> BuiltinType {
    BuiltinType {
        oid,
        name,
        kind: TypeKind::Other,
    }
}

/// Every base, array, range and multirange type of `pg_catalog` (PostgreSQL 15; OIDs below
/// 10000 never change between versions). `int2vector` and `oidvector` are base types here: their
/// text is space-separated, not an array literal. Multiranges are kept as text.
const BUILTIN_TYPES: &[BuiltinType] = &[
    base(16, "bool"),
    base(17, "bytea"),
    base(18, "char"),
    base(19, "name"),
    base(20, "int8"),
    base(21, "int2"),
    base(22, "int2vector"),
    base(23, "int4"),
    base(24, "regproc"),
    base(25, "text"),
    base(26, "oid"),
    base(27, "tid"),
    base(28, "xid"),
    base(29, "cid"),
    base(30, "oidvector"),
    base(114, "json"),
    base(142, "xml"),
    array(143, "_xml", 142),
    base(194, "pg_node_tree"),
    array(199, "_json", 114),
    array(271, "_xid8", 5069),
    base(600, "point"),
    base(601, "lseg"),
    base(602, "path"),
    base(603, "box"),
    base(604, "polygon"),
    base(628, "line"),
    array(629, "_line", 628),
    base(650, "cidr"),
    array(651, "_cidr", 650),
    base(700, "float4"),
    base(701, "float8"),
    base(718, "circle"),
    array(719, "_circle", 718),
    base(774, "macaddr8"),
    array(775, "_macaddr8", 774),
    base(790, "money"),
    array(791, "_money", 790),
    base(829, "macaddr"),
    base(869, "inet"),
    array(1000, "_bool", 16),
    array(1001, "_bytea", 17),
    array(1002, "_char", 18),
    array(1003, "_name", 19),
    array(1005, "_int2", 21),
    array(1006, "_int2vector", 22),
    array(1007, "_int4", 23),
    array(1008, "_regproc", 24),
    array(1009, "_text", 25),
    array(1010, "_tid", 27),
    array(1011, "_xid", 28),
    array(1012, "_cid", 29),
    array(1013, "_oidvector", 30),
    array(1014, "_bpchar", 1042),
    array(1015, "_varchar", 1043),
    array(1016, "_int8", 20),
    array(1017, "_point", 600),
    array(1018, "_lseg", 601),
    array(1019, "_path", 602),
    array_with(1020, "_box", 603, b';'),
    array(1021, "_float4", 700),
    array(1022, "_float8", 701),
    array(1027, "_polygon", 604),
    array(1028, "_oid", 26),
    base(1033, "aclitem"),
    array(1034, "_aclitem", 1033),
    array(1040, "_macaddr", 829),
    array(1041, "_inet", 869),
    base(1042, "bpchar"),
    base(1043, "varchar"),
    base(1082, "date"),
    base(1083, "time"),
    base(1114, "timestamp"),
    array(1115, "_timestamp", 1114),
    array(1182, "_date", 1082),
    array(1183, "_time", 1083),
    base(1184, "timestamptz"),
    array(1185, "_timestamptz", 1184),
    base(1186, "interval"),
    array(1187, "_interval", 1186),
    array(1231, "_numeric", 1700),
    array(1263, "_cstring", 2275),
    base(1266, "timetz"),
    array(1270, "_timetz", 1266),
    base(1560, "bit"),
    array(1561, "_bit", 1560),
    base(1562, "varbit"),
    array(1563, "_varbit", 1562),
    base(1700, "numeric"),
    base(1790, "refcursor"),
    array(2201, "_refcursor", 1790),
    base(2202, "regprocedure"),
    base(2203, "regoper"),
    base(2204, "regoperator"),
    base(2205, "regclass"),
    base(2206, "regtype"),
    array(2207, "_regprocedure", 2202),
    array(2208, "_regoper", 2203),
    array(2209, "_regoperator", 2204),
    array(2210, "_regclass", 2205),
    array(2211, "_regtype", 2206),
    array(2949, "_txid_snapshot", 2970),
    base(2950, "uuid"),
    array(2951, "_uuid", 2950),
    base(2970, "txid_snapshot"),
    base(3220, "pg_lsn"),
    array(3221, "_pg_lsn", 3220),
    base(3361, "pg_ndistinct"),
    base(3402, "pg_dependencies"),
    base(3614, "tsvector"),
    base(3615, "tsquery"),
    base(3642, "gtsvector"),
    array(3643, "_tsvector", 3614),
    array(3644, "_gtsvector", 3642),
    array(3645, "_tsquery", 3615),
    base(3734, "regconfig"),
    array(3735, "_regconfig", 3734),
    base(3769, "regdictionary"),
    array(3770, "_regdictionary", 3769),
    base(3802, "jsonb"),
    array(3807, "_jsonb", 3802),
    range(3904, "int4range", 23),
    array(3905, "_int4range", 3904),
    range(3906, "numrange", 1700),
    array(3907, "_numrange", 3906),
    range(3908, "tsrange", 1114),
    array(3909, "_tsrange", 3908),
    range(3910, "tstzrange", 1184),
    array(3911, "_tstzrange", 3910),
    range(3912, "daterange", 1082),
    array(3913, "_daterange", 3912),
    range(3926, "int8range", 20),
    array(3927, "_int8range", 3926),
    base(4072, "jsonpath"),
    array(4073, "_jsonpath", 4072),
    base(4089, "regnamespace"),
    array(4090, "_regnamespace", 4089),
    base(4096, "regrole"),
    array(4097, "_regrole", 4096),
    base(4191, "regcollation"),
    array(4192, "_regcollation", 4191),
    other(4451, "int4multirange"),
    other(4532, "nummultirange"),
    other(4533, "tsmultirange"),
    other(4534, "tstzmultirange"),
    other(4535, "datemultirange"),
    other(4536, "int8multirange"),
    base(4600, "pg_brin_bloom_summary"),
    base(4601, "pg_brin_minmax_multi_summary"),
    base(5017, "pg_mcv_list"),
    base(5038, "pg_snapshot"),
    array(5039, "_pg_snapshot", 5038),
    base(5069, "xid8"),
    array(6150, "_int4multirange", 4451),
    array(6151, "_nummultirange", 4532),
    array(6152, "_tsmultirange", 4533),
    array(6153, "_tstzmultirange", 4534),
    array(6155, "_datemultirange", 4535),
    array(6157, "_int8multirange", 4536),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn user_type(oid: u32, typname: &str, kind: TypeKind) -> TypeInfo {
        TypeInfo {
            oid,
            schema: "public".into(),
            name: qualified_name("public", typname),
            kind,
        }
    }

    #[test]
    fn builtin_catalog_knows_the_documented_oids() {
        let catalog = TypeCatalog::builtin();
        let expected = [
            (16, "bool"),
            (17, "bytea"),
            (18, "char"),
            (19, "name"),
            (20, "int8"),
            (21, "int2"),
            (23, "int4"),
            (25, "text"),
            (26, "oid"),
            (114, "json"),
            (142, "xml"),
            (600, "point"),
            (601, "lseg"),
            (602, "path"),
            (603, "box"),
            (604, "polygon"),
            (628, "line"),
            (650, "cidr"),
            (700, "float4"),
            (701, "float8"),
            (718, "circle"),
            (774, "macaddr8"),
            (790, "money"),
            (829, "macaddr"),
            (869, "inet"),
            (1042, "bpchar"),
            (1043, "varchar"),
            (1082, "date"),
            (1083, "time"),
            (1114, "timestamp"),
            (1184, "timestamptz"),
            (1186, "interval"),
            (1266, "timetz"),
            (1560, "bit"),
            (1562, "varbit"),
            (1700, "numeric"),
            (2950, "uuid"),
            (3802, "jsonb"),
            (3904, "int4range"),
            (3906, "numrange"),
            (3908, "tsrange"),
            (3910, "tstzrange"),
            (3912, "daterange"),
            (3926, "int8range"),
            (3614, "tsvector"),
            (3220, "pg_lsn"),
            (1007, "_int4"),
            (1009, "_text"),
            (1000, "_bool"),
            (1231, "_numeric"),
            (3807, "_jsonb"),
            (2951, "_uuid"),
            (1185, "_timestamptz"),
            (1020, "_box"),
            (3905, "_int4range"),
        ];
        for (oid, name) in expected {
            assert_eq!(catalog.type_name(oid), name, "oid {oid}");
            assert_eq!(
                catalog.get(oid).map(|t| t.schema.as_str()),
                Some("pg_catalog")
            );
        }
        assert_eq!(catalog.type_name(4_000_000), "oid:4000000");
    }

    #[test]
    fn builtin_arrays_and_ranges_point_at_their_element_and_subtype() {
        let catalog = TypeCatalog::builtin();
        assert_eq!(
            catalog.resolve(1007),
            ResolvedType::Array {
                element: 23,
                delimiter: b','
            }
        );
        assert_eq!(
            catalog.resolve(1020),
            ResolvedType::Array {
                element: 603,
                delimiter: b';'
            }
        );
        assert_eq!(catalog.resolve(3910), ResolvedType::Range { subtype: 1184 });
        assert_eq!(catalog.resolve(3926), ResolvedType::Range { subtype: 20 });
        // Space-separated vectors and multiranges are not array or range literals.
        assert_eq!(catalog.resolve(22), ResolvedType::Unknown);
        assert_eq!(catalog.resolve(4451), ResolvedType::Unknown);
        // Every array's element type is itself in the catalog, except pseudo-type elements.
        for builtin in BUILTIN_TYPES {
            if let TypeKind::Array { element, .. } = builtin.kind {
                assert!(
                    catalog.get(element).is_some() || element == 2275,
                    "{}",
                    builtin.name
                );
            }
        }
    }

    #[test]
    fn the_oid_fast_path_agrees_with_the_names() {
        let catalog = TypeCatalog::builtin();
        for builtin in BUILTIN_TYPES {
            let by_name = match builtin.kind {
                TypeKind::Base => ScalarType::from_name("pg_catalog", builtin.name),
                _ => None,
            };
            assert_eq!(
                ScalarType::from_builtin_oid(builtin.oid),
                by_name,
                "{}",
                builtin.name
            );
            assert_eq!(
                catalog.types[&builtin.oid].scalar, by_name,
                "{}",
                builtin.name
            );
        }
    }

    #[test]
    fn domains_resolve_to_their_base_through_chains() {
        let mut catalog = TypeCatalog::builtin();
        catalog.insert(user_type(16_390, "posint", TypeKind::Domain { base: 23 }));
        catalog.insert(user_type(
            16_391,
            "small_posint",
            TypeKind::Domain { base: 16_390 },
        ));
        catalog.insert(user_type(
            16_392,
            "_posint",
            TypeKind::Array {
                element: 16_390,
                delimiter: b',',
            },
        ));
        assert_eq!(
            catalog.resolve(16_391),
            ResolvedType::Scalar(ScalarType::Int4)
        );
        assert_eq!(catalog.base_type(16_391), Some(23));
        assert_eq!(catalog.base_type(23), Some(23));
        assert_eq!(
            catalog.resolve(16_392),
            ResolvedType::Array {
                element: 16_390,
                delimiter: b','
            }
        );
    }

    #[test]
    fn cyclic_or_dangling_domains_resolve_to_unknown() {
        let mut catalog = TypeCatalog::builtin();
        catalog.insert(user_type(
            16_402,
            "loop_a",
            TypeKind::Domain { base: 16_403 },
        ));
        catalog.insert(user_type(
            16_403,
            "loop_b",
            TypeKind::Domain { base: 16_402 },
        ));
        catalog.insert(user_type(
            16_404,
            "dangling",
            TypeKind::Domain { base: 99_999 },
        ));
        assert_eq!(catalog.resolve(16_402), ResolvedType::Unknown);
        assert_eq!(catalog.base_type(16_402), None);
        assert_eq!(catalog.resolve(16_404), ResolvedType::Unknown);
    }

    #[test]
    fn extension_types_are_recognised_by_name_in_any_schema() {
        let mut catalog = TypeCatalog::builtin();
        catalog.note_type(16_500, "ext", "hstore");
        catalog.note_type(16_501, "public", "citext");
        catalog.note_type(16_502, "public", "bool");
        assert_eq!(catalog.type_name(16_500), "ext.hstore");
        assert_eq!(
            catalog.resolve(16_500),
            ResolvedType::Scalar(ScalarType::Hstore)
        );
        assert_eq!(
            catalog.resolve(16_501),
            ResolvedType::Scalar(ScalarType::Text)
        );
        // A user type named like a built-in is not the built-in.
        assert_eq!(catalog.resolve(16_502), ResolvedType::Unknown);
    }

    #[test]
    fn a_type_message_renames_a_known_type_and_keeps_its_kind() {
        let mut catalog = TypeCatalog::builtin();
        catalog.insert(user_type(16_385, "mood", TypeKind::Enum));
        catalog.note_type(16_385, "app", "feeling");
        assert_eq!(catalog.type_name(16_385), "app.feeling");
        assert_eq!(catalog.resolve(16_385), ResolvedType::Enum);
    }
}
