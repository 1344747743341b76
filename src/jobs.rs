//! Long actions (pairing a lock, and later inclusion and interviews) as jobs
//! whose progress lines can be followed while they run: the installer page
//! shows them as server-sent events. The last few jobs are kept for a look back.
//! Progress lines are written for people and never hold a PIN or a key.

use serde::Serialize;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

/// Jobs kept after they end.
const KEEP: usize = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Running,
    Succeeded,
    Failed,
}

/// One job as the page sees it.
#[derive(Debug, Clone, Serialize)]
pub struct JobView {
    pub job_id: String,
    pub kind: String,
    pub state: JobState,
    pub lines: Vec<String>,
    /// What the job waits for from the person watching (e.g. a Z-Wave
    /// lock's DSK PIN: `{"dsk_pin": "?????-…"}`), while it waits.
    pub input: Option<serde_json::Value>,
    /// The outcome, once it ended.
    pub message: Option<String>,
}

/// One change of a job: a new line, or its end.
#[derive(Debug, Clone, Serialize)]
pub struct JobUpdate {
    pub job_id: String,
    pub state: JobState,
    pub line: Option<String>,
    /// See [`JobView::input`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input: Option<serde_json::Value>,
    pub message: Option<String>,
}

struct Job {
    view: JobView,
    live: broadcast::Sender<JobUpdate>,
}

#[derive(Default)]
pub struct Jobs {
    jobs: Mutex<VecDeque<Job>>,
}

impl Jobs {
    /// A new running job.
    pub fn start(self: &Arc<Self>, kind: &str) -> JobHandle {
        let id = uuid::Uuid::new_v4().to_string();
        let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        if jobs.len() >= KEEP {
            if let Some(i) = jobs.iter().position(|j| j.view.state != JobState::Running) {
                jobs.remove(i);
            }
        }
        jobs.push_back(Job {
            view: JobView {
                job_id: id.clone(),
                kind: kind.to_owned(),
                state: JobState::Running,
                lines: Vec::new(),
                input: None,
                message: None,
            },
            live: broadcast::channel(64).0,
        });
        JobHandle {
            jobs: self.clone(),
            id,
        }
    }

    /// How many jobs are kept (running and ended).
    pub fn len(&self) -> usize {
        self.jobs.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn view(&self, id: &str) -> Option<JobView> {
        let jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        jobs.iter()
            .find(|j| j.view.job_id == id)
            .map(|j| j.view.clone())
    }

    /// What the job has said so far, and what it says from now on (no line
    /// falls between the two).
    pub fn follow(&self, id: &str) -> Option<(JobView, broadcast::Receiver<JobUpdate>)> {
        let jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        let j = jobs.iter().find(|j| j.view.job_id == id)?;
        Some((j.view.clone(), j.live.subscribe()))
    }

    fn update(&self, id: &str, f: impl FnOnce(&mut JobView) -> JobUpdate) {
        let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(j) = jobs.iter_mut().find(|j| j.view.job_id == id) {
            let u = f(&mut j.view);
            let _ = j.live.send(u);
        }
    }
}

/// The running side of a job (clones speak for the same job).
#[derive(Clone)]
pub struct JobHandle {
    jobs: Arc<Jobs>,
    id: String,
}

impl JobHandle {
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn progress(&self, line: &str) {
        self.say(line, None)
    }

    /// Say `line` and wait for `input` from the person watching (cleared by
    /// the next line).
    pub fn ask(&self, line: &str, input: serde_json::Value) {
        self.say(line, Some(input))
    }

    fn say(&self, line: &str, input: Option<serde_json::Value>) {
        self.jobs.update(&self.id, |v| {
            v.lines.push(line.to_owned());
            v.input = input.clone();
            JobUpdate {
                job_id: v.job_id.clone(),
                state: v.state,
                line: Some(line.to_owned()),
                input,
                message: None,
            }
        });
    }

    pub fn finish(self, outcome: Result<String, String>) {
        self.jobs.update(&self.id, |v| {
            let (state, message) = match outcome {
                Ok(m) => (JobState::Succeeded, m),
                Err(m) => (JobState::Failed, m),
            };
            v.state = state;
            v.input = None;
            v.message = Some(message.clone());
            JobUpdate {
                job_id: v.job_id.clone(),
                state,
                line: None,
                input: None,
                message: Some(message),
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_follower_sees_every_line_once_and_the_end() {
        let jobs = Arc::new(Jobs::default());
        let job = jobs.start("ble.pair");
        job.progress("one");
        let (seen, mut rx) = jobs.follow(job.id()).unwrap();
        assert_eq!(seen.lines, ["one"]);
        job.progress("two");
        let id = job.id().to_owned();
        job.finish(Ok("done".into()));
        assert_eq!(rx.recv().await.unwrap().line.as_deref(), Some("two"));
        let end = rx.recv().await.unwrap();
        assert_eq!(end.state, JobState::Succeeded);
        assert_eq!(jobs.view(&id).unwrap().message.as_deref(), Some("done"));
    }

    #[test]
    fn old_jobs_make_room() {
        let jobs = Arc::new(Jobs::default());
        let first = jobs.start("x");
        let first_id = first.id().to_owned();
        first.finish(Err("no".into()));
        for _ in 0..KEEP {
            jobs.start("x").finish(Ok(String::new()));
        }
        assert!(jobs.view(&first_id).is_none());
    }
}
