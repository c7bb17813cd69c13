use super::*;
use cc_core::{Content, DeliveryState, EngagementId, MessageId, Participant, Role, Timestamp};
use futures::FutureExt;
use futures::executor::block_on;

fn msg(i: usize) -> Message {
    Message {
        id: Some(MessageId::from(format!("m{i}"))),
        client_id: None,
        engagement: EngagementId::from("e"),
        sender: Participant::new(Role::Agent),
        content: Content::text(format!("text {i}")),
        server_time: Some(Timestamp(i as i64 * 1000)),
        local_time: Timestamp(0),
        state: DeliveryState::Sent,
        hidden: false,
    }
}

fn ids(page: &HistoryPage) -> Vec<usize> {
    page.messages
        .iter()
        .map(|m| m.id.as_ref().unwrap().as_str()[1..].parse().unwrap())
        .collect()
}

type Log = Arc<Mutex<Vec<PageRequest>>>;

/// A vendor with messages 0..n (0 oldest), paging newest-first by number, without telling
/// whether more exist.
fn numbered(n: usize) -> (impl PageSource, Log) {
    let log: Log = Arc::default();
    let l = Arc::clone(&log);
    let source = move |req: PageRequest| -> BoxFuture<'static, Result<FetchedPage>> {
        l.lock().unwrap().push(req.clone());
        let PageRequest::Number { page, size } = req else {
            panic!("cursor request to a numbered source")
        };
        let (page, size) = (page as usize, size as usize);
        // Newest first, as the vendor sends it: the pager orders it.
        let mut messages: Vec<_> = (0..n)
            .rev()
            .skip((page - 1) * size)
            .take(size)
            .map(msg)
            .collect();
        messages.reverse();
        async move {
            Ok(FetchedPage {
                messages,
                ..FetchedPage::default()
            })
        }
        .boxed()
    };
    (source, log)
}

/// A vendor with messages 0..n paging by before/after message id.
fn cursored(n: usize) -> (impl PageSource, Log) {
    let log: Log = Arc::default();
    let l = Arc::clone(&log);
    let idx = |c: &Cursor| c.as_str()[1..].parse::<usize>().unwrap();
    let source = move |req: PageRequest| -> BoxFuture<'static, Result<FetchedPage>> {
        l.lock().unwrap().push(req.clone());
        let range = match &req {
            PageRequest::Older { before, size } => {
                let end = before.as_ref().map_or(n, idx);
                end.saturating_sub(*size as usize)..end
            }
            PageRequest::Newer { after, size } => {
                let start = idx(after) + 1;
                start..(start + *size as usize).min(n)
            }
            PageRequest::Number { .. } => panic!("numbered request to a cursor source"),
        };
        let messages = range.map(msg).collect();
        async move {
            Ok(FetchedPage {
                messages,
                ..FetchedPage::default()
            })
        }
        .boxed()
    };
    (source, log)
}

#[test]
fn page_numbers_walk_older_then_newer_and_detect_the_end() {
    let (source, log) = numbered(7);
    let mut p = Pager::new(Vendor::Genesys, PagingMode::PageNumber, 3, source).unwrap();
    block_on(async {
        assert_eq!(
            p.next_page().await.unwrap(),
            None,
            "nothing newer than the newest"
        );
        let p1 = p.previous_page().await.unwrap().unwrap();
        assert_eq!(ids(&p1), [4, 5, 6]);
        assert!(p1.has_older && !p1.has_newer);
        let p2 = p.previous_page().await.unwrap().unwrap();
        assert_eq!(ids(&p2), [1, 2, 3]);
        assert!(p2.has_older && p2.has_newer);
        let p3 = p.previous_page().await.unwrap().unwrap();
        assert_eq!(ids(&p3), [0]);
        assert!(!p3.has_older, "a short page is the last");
        assert_eq!(p.previous_page().await.unwrap(), None);
        let back = p.next_page().await.unwrap().unwrap();
        assert_eq!(ids(&back), [1, 2, 3]);
        let back = p.next_page().await.unwrap().unwrap();
        assert_eq!(ids(&back), [4, 5, 6]);
        assert_eq!(p.next_page().await.unwrap(), None);
    });
    let pages: Vec<u32> = log
        .lock()
        .unwrap()
        .iter()
        .map(|r| match r {
            PageRequest::Number { page, size: 3 } => *page,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(pages, [1, 2, 3, 2, 1], "no request past the end");
}

#[test]
fn a_full_last_page_ends_at_the_empty_one() {
    let (source, log) = numbered(6);
    let mut p = Pager::new(Vendor::Avaya, PagingMode::PageNumber, 3, source).unwrap();
    block_on(async {
        assert_eq!(ids(&p.previous_page().await.unwrap().unwrap()), [3, 4, 5]);
        assert_eq!(ids(&p.previous_page().await.unwrap().unwrap()), [0, 1, 2]);
        assert_eq!(p.previous_page().await.unwrap(), None);
        assert_eq!(p.previous_page().await.unwrap(), None);
        // Still standing on the oldest page: newer goes to the newest.
        assert_eq!(ids(&p.next_page().await.unwrap().unwrap()), [3, 4, 5]);
    });
    assert_eq!(log.lock().unwrap().len(), 4, "the empty page is asked once");
}

#[test]
fn empty_history() {
    let (source, log) = numbered(0);
    let mut p = Pager::new(Vendor::Genesys, PagingMode::PageNumber, 10, source).unwrap();
    block_on(async {
        assert_eq!(p.previous_page().await.unwrap(), None);
        assert_eq!(p.previous_page().await.unwrap(), None);
        assert_eq!(p.next_page().await.unwrap(), None);
    });
    assert_eq!(log.lock().unwrap().len(), 1);
}

#[test]
fn cursors_walk_older_then_newer() {
    let (source, log) = cursored(5);
    let mut p = Pager::new(Vendor::Genesys, PagingMode::Cursor, 2, source).unwrap();
    block_on(async {
        let a = p.previous_page().await.unwrap().unwrap();
        assert_eq!(ids(&a), [3, 4]);
        assert!(a.has_older && !a.has_newer);
        assert_eq!(ids(&p.previous_page().await.unwrap().unwrap()), [1, 2]);
        let c = p.previous_page().await.unwrap().unwrap();
        assert_eq!(ids(&c), [0]);
        assert!(!c.has_older && c.has_newer);
        assert_eq!(p.previous_page().await.unwrap(), None);
        assert_eq!(ids(&p.next_page().await.unwrap().unwrap()), [1, 2]);
        assert_eq!(ids(&p.next_page().await.unwrap().unwrap()), [3, 4]);
        // A full page may have more after it: the vendor answers empty, and that is the end.
        assert_eq!(p.next_page().await.unwrap(), None);
        assert_eq!(p.next_page().await.unwrap(), None);
    });
    let log = log.lock().unwrap();
    assert_eq!(
        log[0],
        PageRequest::Older {
            before: None,
            size: 2
        }
    );
    assert_eq!(
        log[1],
        PageRequest::Older {
            before: Some(Cursor("m3".into())),
            size: 2
        }
    );
    assert_eq!(
        log[3],
        PageRequest::Newer {
            after: Cursor("m0".into()),
            size: 2
        }
    );
    assert_eq!(log.len(), 6);
}

#[test]
fn vendor_cursors_and_flags_win() {
    // A vendor that returns a link to the older page and says when there is none.
    let source = |req: PageRequest| -> BoxFuture<'static, Result<FetchedPage>> {
        async move {
            Ok(match req {
                PageRequest::Older { before: None, .. } => FetchedPage {
                    messages: vec![msg(8), msg(9)],
                    has_older: Some(true),
                    older: Some(Cursor("https://vendor/page?2".into())),
                    ..FetchedPage::default()
                },
                PageRequest::Older {
                    before: Some(c), ..
                } if c.as_str() == "https://vendor/page?2" => FetchedPage {
                    messages: vec![msg(7)],
                    has_older: Some(false),
                    ..FetchedPage::default()
                },
                other => panic!("unexpected {other:?}"),
            })
        }
        .boxed()
    };
    let mut p = Pager::new(Vendor::Avaya, PagingMode::Cursor, 50, source).unwrap();
    block_on(async {
        let first = p.previous_page().await.unwrap().unwrap();
        assert!(
            first.has_older,
            "the vendor says so, though the page is short"
        );
        let second = p.previous_page().await.unwrap().unwrap();
        assert_eq!(ids(&second), [7]);
        assert!(!second.has_older);
        assert_eq!(p.previous_page().await.unwrap(), None);
    });
}

#[test]
fn pages_merge_into_a_transcript_without_duplicates() {
    // Page-number paging shifts when a message arrives between two fetches: the overlap
    // is removed by the transcript.
    let count = Arc::new(Mutex::new(4usize));
    let c = Arc::clone(&count);
    let source = move |req: PageRequest| -> BoxFuture<'static, Result<FetchedPage>> {
        let n = *c.lock().unwrap();
        let PageRequest::Number { page, size } = req else {
            panic!()
        };
        let mut messages: Vec<_> = (0..n)
            .rev()
            .skip((page as usize - 1) * size as usize)
            .take(size as usize)
            .map(msg)
            .collect();
        // A duplicate inside the page, too.
        if let Some(first) = messages.first().cloned() {
            messages.push(first);
        }
        async move {
            Ok(FetchedPage {
                messages,
                ..FetchedPage::default()
            })
        }
        .boxed()
    };
    let transcript = Arc::new(Mutex::new(Transcript::new()));
    let mut p = Pager::new(Vendor::Genesys, PagingMode::PageNumber, 2, source)
        .unwrap()
        .with_transcript(Arc::clone(&transcript));
    block_on(async {
        let first = p.previous_page().await.unwrap().unwrap();
        assert_eq!(ids(&first), [2, 3], "no duplicate within a page");
        *count.lock().unwrap() = 5;
        let second = p.previous_page().await.unwrap().unwrap();
        assert_eq!(ids(&second), [1, 2]);
        p.previous_page().await.unwrap().unwrap();
    });
    let t = transcript.lock().unwrap();
    let all: Vec<_> = t.iter().map(|m| m.id.clone().unwrap()).collect();
    assert_eq!(
        all,
        ["m0", "m1", "m2", "m3"].map(MessageId::from).to_vec(),
        "each message once, in order"
    );
}

#[test]
fn errors_pass_through_and_the_position_stays() {
    let fail = Arc::new(Mutex::new(true));
    let f = Arc::clone(&fail);
    let (mut inner, _) = numbered(5);
    let source = move |req: PageRequest| -> BoxFuture<'static, Result<FetchedPage>> {
        if *f.lock().unwrap() {
            async { Err(Error::closed(Vendor::Genesys, "session")) }.boxed()
        } else {
            inner.fetch(req)
        }
    };
    let mut p = Pager::new(Vendor::Genesys, PagingMode::PageNumber, 2, source).unwrap();
    block_on(async {
        assert!(p.previous_page().await.is_err());
        *fail.lock().unwrap() = false;
        assert_eq!(ids(&p.previous_page().await.unwrap().unwrap()), [3, 4]);
    });
}

#[test]
fn page_size_zero_is_invalid_and_pager_is_a_history_pager() {
    let (source, _) = numbered(1);
    let err = Pager::new(Vendor::Genesys, PagingMode::PageNumber, 0, source).unwrap_err();
    assert!(err.to_string().contains("page_size"), "{err}");
    let (source, _) = numbered(1);
    let p = Pager::new(Vendor::Genesys, PagingMode::PageNumber, 5, source).unwrap();
    assert_eq!(p.page_size(), 5);
    let boxed: Box<dyn HistoryPager> = Box::new(p);
    assert!(format!("{boxed:?}").contains("PageNumber"));
}
