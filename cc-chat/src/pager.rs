//! A generic [`HistoryPager`] over the adapter's page-fetch function.
//!
//! # The machinery
//!
//! The adapter knows how to ask its vendor for one page; the [`Pager`] knows where it is in
//! the history and what to ask next. The adapter gives a [`PageSource`] (usually a closure
//! returning a boxed future) that turns a [`PageRequest`] into a [`FetchedPage`]; the pager
//! walks the history like a reader:
//!
//! - it starts *above* the newest page; [`HistoryPager::previous_page`] fetches the newest
//!   page first, then older and older ones;
//! - [`HistoryPager::next_page`] walks back towards the newest page it came from (at the
//!   start there is nothing newer, so it returns `None`);
//! - either returns `None` when there is no page in that direction: the vendor said so
//!   ([`FetchedPage::has_older`], a page count), a page came back short or empty, or there
//!   is no cursor to go on from.
//!
//! Two paging styles ([`PagingMode`]):
//!
//! - [`PagingMode::PageNumber`]: page 1 is the newest, `n + 1` is older than `n`
//!   (Genesys Web Messaging `pageNumber` / `pageSize`, Avaya `pageNumber`).
//! - [`PagingMode::Cursor`]: "older than `before`" / "newer than `after`", where the cursor
//!   is the vendor's own link or token when it gives one ([`FetchedPage::older`]), else the
//!   vendor id of the page's oldest (newest) message (Genesys guest chat `before` / `after`).
//!
//! Each returned [`HistoryPage`] is ordered oldest first and has no vendor id twice. With
//! [`Pager::with_transcript`] every fetched page is also merged into a shared
//! [`Transcript`], which removes what pages overlap in (page-number paging shifts when new
//! messages arrive while the user scrolls).

use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use cc_core::{Error, HistoryPage, HistoryPager, Message, Result, Vendor};
use futures::future::BoxFuture;

use crate::Transcript;

/// How a vendor pages its history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PagingMode {
    /// Numbered pages, 1 = newest.
    PageNumber,
    /// Older-than / newer-than a cursor.
    Cursor,
}

/// An opaque position in the history: a vendor link or token, or a message id.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Cursor(pub String);

impl Cursor {
    /// The cursor as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What the pager asks the adapter to fetch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PageRequest {
    /// Page `page` (1 = newest) of `size` messages.
    Number {
        /// The page, from 1.
        page: u32,
        /// Messages per page.
        size: u32,
    },
    /// Up to `size` messages older than `before`; the newest ones when `before` is `None`.
    Older {
        /// The position to go back from.
        before: Option<Cursor>,
        /// Messages per page.
        size: u32,
    },
    /// Up to `size` messages newer than `after`.
    Newer {
        /// The position to go forward from.
        after: Cursor,
        /// Messages per page.
        size: u32,
    },
}

/// One page as the adapter fetched it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FetchedPage {
    /// The messages, oldest first (the pager keeps equal times in the given order).
    pub messages: Vec<Message>,
    /// Whether older messages exist, when the vendor says (a page count, a next link);
    /// `None` to infer it from a full page.
    pub has_older: Option<bool>,
    /// Whether newer messages exist, when the vendor says; `None` to infer it.
    pub has_newer: Option<bool>,
    /// The vendor's cursor to the older page, when it gives one (cursor paging).
    pub older: Option<Cursor>,
    /// The vendor's cursor to the newer page, when it gives one (cursor paging).
    pub newer: Option<Cursor>,
}

/// Fetches one page; implemented by any
/// `FnMut(PageRequest) -> BoxFuture<'static, Result<FetchedPage>> + Send` closure.
pub trait PageSource: Send {
    /// Fetches the page `request` names.
    fn fetch(&mut self, request: PageRequest) -> BoxFuture<'static, Result<FetchedPage>>;
}

impl<F> PageSource for F
where
    F: FnMut(PageRequest) -> BoxFuture<'static, Result<FetchedPage>> + Send,
{
    fn fetch(&mut self, request: PageRequest) -> BoxFuture<'static, Result<FetchedPage>> {
        self(request)
    }
}

/// Where the pager stands: the page it returned last.
#[derive(Clone, Debug)]
struct Position {
    page: u32,
    older: Option<Cursor>,
    newer: Option<Cursor>,
    has_older: bool,
    has_newer: bool,
}

/// A [`HistoryPager`] over a [`PageSource`]; see the [module docs](self).
pub struct Pager<S> {
    vendor: Vendor,
    mode: PagingMode,
    size: u32,
    source: S,
    position: Option<Position>,
    transcript: Option<Arc<Mutex<Transcript>>>,
}

impl<S> fmt::Debug for Pager<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pager")
            .field("vendor", &self.vendor)
            .field("mode", &self.mode)
            .field("size", &self.size)
            .field("position", &self.position)
            .finish_non_exhaustive()
    }
}

impl<S: PageSource> Pager<S> {
    /// A pager of `page_size` messages per page, standing above the newest page.
    ///
    /// A `page_size` of 0 is an [`Error::InvalidInput`] naming `page_size`.
    pub fn new(vendor: Vendor, mode: PagingMode, page_size: u32, source: S) -> Result<Self> {
        if page_size == 0 {
            return Err(Error::invalid(vendor, "page_size", "must be at least 1"));
        }
        Ok(Pager {
            vendor,
            mode,
            size: page_size,
            source,
            position: None,
            transcript: None,
        })
    }

    /// Also merges every fetched page into `transcript`.
    pub fn with_transcript(mut self, transcript: Arc<Mutex<Transcript>>) -> Self {
        self.transcript = Some(transcript);
        self
    }

    /// The page size.
    pub fn page_size(&self) -> u32 {
        self.size
    }

    fn older_request(&self) -> Option<PageRequest> {
        let size = self.size;
        match (&self.position, self.mode) {
            (None, PagingMode::PageNumber) => Some(PageRequest::Number { page: 1, size }),
            (None, PagingMode::Cursor) => Some(PageRequest::Older { before: None, size }),
            (Some(p), _) if !p.has_older => None,
            (Some(p), PagingMode::PageNumber) => Some(PageRequest::Number {
                page: p.page + 1,
                size,
            }),
            (Some(p), PagingMode::Cursor) => p.older.clone().map(|c| PageRequest::Older {
                before: Some(c),
                size,
            }),
        }
    }

    fn newer_request(&self) -> Option<PageRequest> {
        let size = self.size;
        let p = self.position.as_ref()?;
        if !p.has_newer {
            return None;
        }
        match self.mode {
            PagingMode::PageNumber => (p.page > 1).then(|| PageRequest::Number {
                page: p.page - 1,
                size,
            }),
            PagingMode::Cursor => p
                .newer
                .clone()
                .map(|after| PageRequest::Newer { after, size }),
        }
    }

    async fn go(&mut self, older: bool) -> Result<Option<HistoryPage>> {
        let request = if older {
            self.older_request()
        } else {
            self.newer_request()
        };
        let Some(request) = request else {
            return Ok(None);
        };
        let fetched = self.source.fetch(request.clone()).await?;
        let mut messages = fetched.messages;
        messages.sort_by_key(Message::sort_time);
        let mut seen = std::collections::HashSet::new();
        messages.retain(|m| m.id.as_ref().is_none_or(|id| seen.insert(id.clone())));

        if messages.is_empty() {
            // Nothing that way: stay, and remember it.
            match &mut self.position {
                Some(p) if older => p.has_older = false,
                Some(p) => p.has_newer = false,
                None => {
                    self.position = Some(Position {
                        page: 0,
                        older: None,
                        newer: None,
                        has_older: false,
                        has_newer: false,
                    });
                }
            }
            return Ok(None);
        }

        let full = messages.len() >= self.size as usize;
        let came_from_newer = self.position.is_some() && older;
        let came_from_older = !older;
        let page = match request {
            PageRequest::Number { page, .. } => page,
            _ => 0,
        };
        let (has_older, has_newer) = match self.mode {
            PagingMode::PageNumber => (
                fetched.has_older.unwrap_or(full),
                fetched.has_newer.unwrap_or(page > 1),
            ),
            PagingMode::Cursor => (
                if came_from_older {
                    fetched.has_older.unwrap_or(true)
                } else {
                    fetched.has_older.unwrap_or(full)
                },
                if older {
                    fetched.has_newer.unwrap_or(came_from_newer)
                } else {
                    fetched.has_newer.unwrap_or(full)
                },
            ),
        };
        let older_cursor = fetched.older.or_else(|| {
            messages
                .iter()
                .find_map(|m| m.id.as_ref())
                .map(|id| Cursor(id.as_str().to_owned()))
        });
        let newer_cursor = fetched.newer.or_else(|| {
            messages
                .iter()
                .rev()
                .find_map(|m| m.id.as_ref())
                .map(|id| Cursor(id.as_str().to_owned()))
        });
        let has_older =
            has_older && (self.mode == PagingMode::PageNumber || older_cursor.is_some());
        let has_newer =
            has_newer && (self.mode == PagingMode::PageNumber || newer_cursor.is_some());
        self.position = Some(Position {
            page,
            older: older_cursor,
            newer: newer_cursor,
            has_older,
            has_newer,
        });
        let page = HistoryPage {
            messages,
            has_older,
            has_newer,
        };
        if let Some(t) = &self.transcript {
            t.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .merge_page(&page);
        }
        Ok(Some(page))
    }
}

#[async_trait]
impl<S: PageSource> HistoryPager for Pager<S> {
    async fn previous_page(&mut self) -> Result<Option<HistoryPage>> {
        self.go(true).await
    }

    async fn next_page(&mut self) -> Result<Option<HistoryPage>> {
        self.go(false).await
    }
}

#[cfg(test)]
mod tests;
