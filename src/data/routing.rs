//! Routing by bucket (seed 001): which data_contact owns a bucket.
//!
//! The table maps ranges of a bucket name's first character to data_contact nodes, as the
//! Elixir guide's `[{?a..?m, :"foo@host"}, {?n..?z, :"bar@host"}]`. A data node that does not
//! own a bucket passes the request to the node its own table names, which looks at *its*
//! table (it may differ), hop by hop. Each hop adds itself to the request's list of visited
//! nodes; a node that finds itself there refuses the request as a loop instead of passing it
//! on for ever. An empty table means a single data_contact owns every bucket.
//!
//! Pure: no sockets, no processes.

use crate::dist::NodeName;

/// The most hops a request may take.
pub const MAX_HOPS: usize = 8;

/// One route: buckets whose first character is in `first..=last` belong to `node`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Route {
    /// The first character of the range.
    pub first: char,
    /// The last character of the range (inclusive).
    pub last: char,
    /// The data_contact that owns the range.
    pub node: NodeName,
}

impl Route {
    /// Whether the route covers `bucket`.
    pub fn covers(&self, bucket: &str) -> bool {
        bucket
            .chars()
            .next()
            .is_some_and(|c| (self.first..=self.last).contains(&c))
    }
}

/// A routing table.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Routes {
    /// The routes, in file order.
    pub routes: Vec<Route>,
}

/// Where a request for a bucket goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// No table: the node's own data_contact (itself, or the one it follows).
    Local,
    /// The owner per this node's table.
    Owner(NodeName),
    /// No route covers the bucket.
    NoRoute,
}

impl Routes {
    /// Whether there is a table.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// Where requests for `bucket` go.
    pub fn decide(&self, bucket: &str) -> Decision {
        if self.routes.is_empty() {
            return Decision::Local;
        }
        match self.routes.iter().find(|r| r.covers(bucket)) {
            Some(r) => Decision::Owner(r.node.clone()),
            None => Decision::NoRoute,
        }
    }

    /// The contacts named in the table.
    pub fn owners(&self) -> Vec<&NodeName> {
        let mut out: Vec<&NodeName> = Vec::new();
        for r in &self.routes {
            if !out.contains(&&r.node) {
                out.push(&r.node);
            }
        }
        out
    }
}

/// What is wrong with a table: the index of the route at fault, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteProblem {
    /// The route at fault.
    pub index: usize,
    /// Why.
    pub why: String,
}

/// Checks a table: no range backwards, no two ranges overlapping, and with `exhaustive`, no
/// gap between the lowest and highest character covered.
pub fn validate(routes: &[Route], exhaustive: bool) -> Result<(), RouteProblem> {
    for (i, r) in routes.iter().enumerate() {
        if r.first > r.last {
            return Err(RouteProblem {
                index: i,
                why: format!("the range {:?}..{:?} runs backwards", r.first, r.last),
            });
        }
        for (j, other) in routes[..i].iter().enumerate() {
            if r.first <= other.last && other.first <= r.last {
                return Err(RouteProblem {
                    index: i,
                    why: format!(
                        "the range {:?}..{:?} overlaps route {} ({:?}..{:?} → {})",
                        r.first,
                        r.last,
                        j + 1,
                        other.first,
                        other.last,
                        other.node
                    ),
                });
            }
        }
    }
    if exhaustive && routes.len() > 1 {
        let mut sorted: Vec<(usize, &Route)> = routes.iter().enumerate().collect();
        sorted.sort_by_key(|(_, r)| r.first);
        for w in sorted.windows(2) {
            let (_, a) = w[0];
            let (j, b) = w[1];
            let next = char::from_u32(a.last as u32 + 1);
            if next != Some(b.first) {
                return Err(RouteProblem {
                    index: j,
                    why: format!(
                        "the routes are declared exhaustive, but nothing covers {:?}..{:?}",
                        next.unwrap_or(a.last),
                        char::from_u32(b.first as u32 - 1).unwrap_or(b.first)
                    ),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(first: char, last: char, node: &str) -> Route {
        Route {
            first,
            last,
            node: NodeName::parse(node).unwrap(),
        }
    }

    #[test]
    fn the_seed_table_routes_by_first_character() {
        let t = Routes {
            routes: vec![route('a', 'm', "foo@h"), route('n', 'z', "bar@h")],
        };
        assert_eq!(
            t.decide("apples"),
            Decision::Owner(NodeName::parse("foo@h").unwrap())
        );
        assert_eq!(
            t.decide("melons"),
            Decision::Owner(NodeName::parse("foo@h").unwrap())
        );
        assert_eq!(
            t.decide("nuts"),
            Decision::Owner(NodeName::parse("bar@h").unwrap())
        );
        assert_eq!(t.decide("Zebra"), Decision::NoRoute);
        assert_eq!(t.decide(""), Decision::NoRoute);
        assert_eq!(Routes::default().decide("x"), Decision::Local);
        assert_eq!(t.owners().len(), 2);
    }

    #[test]
    fn overlaps_backwards_ranges_and_gaps_are_named() {
        let p = validate(&[route('a', 'm', "a@h"), route('k', 'z', "b@h")], false).unwrap_err();
        assert_eq!(p.index, 1);
        assert!(p.why.contains("overlaps route 1"), "{}", p.why);
        let p = validate(&[route('m', 'a', "a@h")], false).unwrap_err();
        assert!(p.why.contains("backwards"), "{}", p.why);
        let gap = [route('a', 'm', "a@h"), route('o', 'z', "b@h")];
        assert!(validate(&gap, false).is_ok());
        let p = validate(&gap, true).unwrap_err();
        assert!(p.why.contains("'n'..'n'"), "{}", p.why);
        assert!(validate(&[route('a', 'm', "a@h"), route('n', 'z', "b@h")], true).is_ok());
    }
}
