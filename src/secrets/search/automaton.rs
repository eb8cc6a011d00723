//! An Aho-Corasick automaton over many patterns: linear in the haystack whatever the patterns,
//! and a stream carries one state between chunks instead of a tail of bytes. Written here: the
//! crate is in the lock file only as a dependency of a dependency.

use std::collections::VecDeque;

/// An Aho-Corasick automaton: a trie of the patterns with failure links.
///
/// States are `u32` indices, 0 being the root. The root's transitions are a full table, every
/// other state's a short list sorted by byte (most states have one), which keeps memory at a few
/// dozen bytes per pattern byte.
pub(in crate::secrets) struct Automaton {
    root: Box<[u32; 256]>,
    children: Vec<Vec<(u8, u32)>>,
    fail: Vec<u32>,
    depth: Vec<u32>,
    /// The pattern spelled by the path to this state, if any.
    own: Vec<Option<u32>>,
    /// The nearest state on this state's failure chain (itself excluded) with its own pattern.
    dict: Vec<Option<u32>>,
    /// The lowest-numbered pattern ending at this state (its own or one on its failure chain).
    first: Vec<Option<u32>>,
    lens: Vec<usize>,
    longest: usize,
    built: bool,
}

impl Automaton {
    pub(in crate::secrets) fn new() -> Automaton {
        Automaton {
            root: Box::new([0; 256]),
            children: vec![Vec::new()],
            fail: vec![0],
            depth: vec![0],
            own: vec![None],
            dict: vec![None],
            first: vec![None],
            lens: Vec::new(),
            longest: 0,
            built: false,
        }
    }

    fn child(&self, state: u32, b: u8) -> Option<u32> {
        let list = &self.children[state as usize];
        list.binary_search_by_key(&b, |&(c, _)| c)
            .ok()
            .map(|i| list[i].1)
    }

    /// Add a non-empty pattern before [`Automaton::build`]: `Ok(id)` for a new one, ids counting
    /// from 0, or `Err(id)` of the identical pattern added before.
    pub(in crate::secrets) fn insert(&mut self, pattern: &[u8]) -> Result<u32, u32> {
        assert!(!self.built && !pattern.is_empty());
        let mut state = 0u32;
        for &b in pattern {
            state = match self.child(state, b) {
                Some(next) => next,
                None => {
                    let next = self.children.len() as u32;
                    let depth = self.depth[state as usize] + 1;
                    self.children.push(Vec::new());
                    self.fail.push(0);
                    self.depth.push(depth);
                    self.own.push(None);
                    self.dict.push(None);
                    self.first.push(None);
                    let list = &mut self.children[state as usize];
                    let at = list.partition_point(|&(c, _)| c < b);
                    list.insert(at, (b, next));
                    next
                }
            };
        }
        if let Some(id) = self.own[state as usize] {
            return Err(id);
        }
        let id = self.lens.len() as u32;
        self.own[state as usize] = Some(id);
        self.first[state as usize] = Some(id);
        self.lens.push(pattern.len());
        self.longest = self.longest.max(pattern.len());
        Ok(id)
    }

    /// Compute failure links; no pattern can be added afterwards.
    pub(in crate::secrets) fn build(&mut self) {
        self.built = true;
        for &(b, s) in &self.children[0] {
            self.root[usize::from(b)] = s;
        }
        let mut queue: VecDeque<u32> = self.children[0].iter().map(|&(_, s)| s).collect();
        while let Some(state) = queue.pop_front() {
            for i in 0..self.children[state as usize].len() {
                let (b, next) = self.children[state as usize][i];
                let mut f = self.fail[state as usize];
                let target = loop {
                    if f == 0 {
                        break self.root[usize::from(b)];
                    }
                    if let Some(t) = self.child(f, b) {
                        break t;
                    }
                    f = self.fail[f as usize];
                };
                let n = next as usize;
                let t = target as usize;
                self.fail[n] = target;
                self.dict[n] = if self.own[t].is_some() {
                    Some(target)
                } else {
                    self.dict[t]
                };
                self.first[n] = match (self.own[n], self.first[t]) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                queue.push_back(next);
            }
        }
    }

    /// The state after reading `b` in `state`. Amortised O(1) over a stream.
    pub(in crate::secrets) fn next(&self, mut state: u32, b: u8) -> u32 {
        loop {
            if state == 0 {
                return self.root[usize::from(b)];
            }
            if let Some(t) = self.child(state, b) {
                return t;
            }
            state = self.fail[state as usize];
        }
    }

    /// The lowest-numbered pattern the input read so far ends with, in `state`.
    pub(in crate::secrets) fn first_match(&self, state: u32) -> Option<u32> {
        self.first[state as usize]
    }

    /// Every pattern the input read so far ends with, in `state`.
    pub(in crate::secrets) fn matches(&self, state: u32) -> impl Iterator<Item = u32> + '_ {
        let s = state as usize;
        let start = if self.own[s].is_some() {
            Some(state)
        } else {
            self.dict[s]
        };
        std::iter::successors(start, |&s| self.dict[s as usize])
            .filter_map(|s| self.own[s as usize])
    }

    /// How many bytes of the input read so far may still be the start of an occurrence.
    pub(in crate::secrets) fn depth(&self, state: u32) -> usize {
        self.depth[state as usize] as usize
    }

    pub(in crate::secrets) fn pattern_len(&self, id: u32) -> usize {
        self.lens[id as usize]
    }

    pub(in crate::secrets) fn longest(&self) -> usize {
        self.longest
    }

    pub(in crate::secrets) fn patterns(&self) -> usize {
        self.lens.len()
    }
}

impl Drop for Automaton {
    /// The transitions spell the patterns: zero them (best effort, see `wipe.rs`).
    fn drop(&mut self) {
        self.root.fill(0);
        for list in &mut self.children {
            list.fill((0, 0));
            std::hint::black_box(list.as_slice());
        }
        std::hint::black_box(&self.root[..]);
    }
}
