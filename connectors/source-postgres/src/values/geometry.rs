//! Geometric types as their output functions print them: point `(1,2)`, line `{a,b,c}`, lseg
//! `[(1,2),(3,4)]`, box `(3,4),(1,2)`, path `[(1,2),(3,4)]` (open) or `((1,2),(3,4))` (closed),
//! polygon `((0,0),(1,1),(1,0))`, circle `<(1,2),3>`. Coordinates are `float8` text, including
//! `NaN`, `Infinity` and exponents (`1e+20`).

use sluice_api::Geometry;

use crate::types::ScalarType;

/// Parse the text of a geometric `scalar` type; `None` when malformed or not geometric.
pub(super) fn parse(scalar: ScalarType, text: &str) -> Option<Geometry> {
    let mut reader = Reader { text, pos: 0 };
    let geometry = match scalar {
        ScalarType::Point => {
            let (x, y) = reader.point()?;
            Geometry::Point { x, y }
        }
        ScalarType::Line => {
            reader.expect(b'{')?;
            let a = reader.number()?;
            reader.expect(b',')?;
            let b = reader.number()?;
            reader.expect(b',')?;
            let c = reader.number()?;
            reader.expect(b'}')?;
            Geometry::Line { a, b, c }
        }
        ScalarType::Lseg => {
            reader.expect(b'[')?;
            let points = reader.two_points()?;
            reader.expect(b']')?;
            Geometry::LineSegment(points)
        }
        ScalarType::Box => Geometry::Box(reader.two_points()?),
        ScalarType::Path => {
            let closed = match reader.peek()? {
                b'[' => false,
                b'(' => true,
                _ => return None,
            };
            Geometry::Path {
                closed,
                points: reader.point_list()?,
            }
        }
        ScalarType::Polygon => Geometry::Polygon(reader.point_list()?),
        ScalarType::Circle => {
            reader.expect(b'<')?;
            let (x, y) = reader.point()?;
            reader.expect(b',')?;
            let radius = reader.number()?;
            reader.expect(b'>')?;
            Geometry::Circle { x, y, radius }
        }
        _ => return None,
    };
    reader.skip_whitespace();
    (reader.pos == text.len()).then_some(geometry)
}

struct Reader<'a> {
    text: &'a str,
    pos: usize,
}

impl Reader<'_> {
    fn skip_whitespace(&mut self) {
        while self
            .text
            .as_bytes()
            .get(self.pos)
            .is_some_and(u8::is_ascii_whitespace)
        {
            self.pos += 1;
        }
    }

    /// The next non-space byte, not consumed.
    fn peek(&mut self) -> Option<u8> {
        self.skip_whitespace();
        self.text.as_bytes().get(self.pos).copied()
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.pos += 1)
    }

    /// A `float8` up to the next separator.
    fn number(&mut self) -> Option<f64> {
        self.skip_whitespace();
        let bytes = self.text.as_bytes();
        let start = self.pos;
        while bytes.get(self.pos).is_some_and(|b| {
            !b.is_ascii_whitespace()
                && !matches!(
                    b,
                    b',' | b'(' | b')' | b'[' | b']' | b'<' | b'>' | b'{' | b'}'
                )
        }) {
            self.pos += 1;
        }
        self.text[start..self.pos].parse().ok()
    }

    /// `(x,y)`.
    fn point(&mut self) -> Option<(f64, f64)> {
        self.expect(b'(')?;
        let x = self.number()?;
        self.expect(b',')?;
        let y = self.number()?;
        self.expect(b')')?;
        Some((x, y))
    }

    /// `(x1,y1),(x2,y2)`.
    fn two_points(&mut self) -> Option<[(f64, f64); 2]> {
        let first = self.point()?;
        self.expect(b',')?;
        let second = self.point()?;
        Some([first, second])
    }

    /// `[p,...]` or `(p,...)`: at least one point, enclosed by matching brackets.
    fn point_list(&mut self) -> Option<Vec<(f64, f64)>> {
        let close = match self.peek()? {
            b'[' => b']',
            b'(' => b')',
            _ => return None,
        };
        self.pos += 1;
        let mut points = vec![self.point()?];
        while self.peek()? == b',' {
            self.pos += 1;
            points.push(self.point()?);
        }
        self.expect(close)?;
        Some(points)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_geometric_form_postgres_prints_parses() {
        assert_eq!(
            parse(ScalarType::Point, "(1.5,-2)"),
            Some(Geometry::Point { x: 1.5, y: -2.0 })
        );
        assert_eq!(
            parse(ScalarType::Line, "{1,-1,0}"),
            Some(Geometry::Line {
                a: 1.0,
                b: -1.0,
                c: 0.0
            })
        );
        assert_eq!(
            parse(ScalarType::Lseg, "[(1,2),(3,4)]"),
            Some(Geometry::LineSegment([(1.0, 2.0), (3.0, 4.0)]))
        );
        assert_eq!(
            parse(ScalarType::Box, "(3,4),(1,2)"),
            Some(Geometry::Box([(3.0, 4.0), (1.0, 2.0)]))
        );
        assert_eq!(
            parse(ScalarType::Path, "[(1,2),(3,4)]"),
            Some(Geometry::Path {
                closed: false,
                points: vec![(1.0, 2.0), (3.0, 4.0)]
            })
        );
        assert_eq!(
            parse(ScalarType::Path, "((1,2),(3,4),(5,6))"),
            Some(Geometry::Path {
                closed: true,
                points: vec![(1.0, 2.0), (3.0, 4.0), (5.0, 6.0)]
            })
        );
        assert_eq!(
            parse(ScalarType::Polygon, "((0,0),(1,1),(1,0))"),
            Some(Geometry::Polygon(vec![(0.0, 0.0), (1.0, 1.0), (1.0, 0.0)]))
        );
        assert_eq!(
            parse(ScalarType::Circle, "<(1,2),3>"),
            Some(Geometry::Circle {
                x: 1.0,
                y: 2.0,
                radius: 3.0
            })
        );
    }

    #[test]
    fn coordinates_may_be_exponents_and_special_values() {
        let Some(Geometry::Point { x, y }) = parse(ScalarType::Point, "(1e+20,NaN)") else {
            panic!("point with NaN rejected");
        };
        assert_eq!(x, 1e20);
        assert!(y.is_nan());
        assert_eq!(
            parse(ScalarType::Point, "(-Infinity,0)"),
            Some(Geometry::Point {
                x: f64::NEG_INFINITY,
                y: 0.0
            })
        );
    }

    #[test]
    fn malformed_geometry_is_rejected() {
        for (scalar, bad) in [
            (ScalarType::Point, "(1,2"),
            (ScalarType::Point, "(1,2)x"),
            (ScalarType::Line, "{1,2}"),
            (ScalarType::Lseg, "[(1,2)]"),
            (ScalarType::Path, "[(1,2),(3,4))"),
            (ScalarType::Polygon, "()"),
            (ScalarType::Circle, "<(1,2)>"),
            (ScalarType::Int4, "(1,2)"),
        ] {
            assert_eq!(parse(scalar, bad), None, "{bad:?} accepted as {scalar:?}");
        }
    }
}
