//! An application's enrolment link (`/enroll/<token>`): a page that says whose account it is
//! for and which application sent it, and a button that uses it. Only the button uses the
//! link: mail scanners and chat previews follow links with GET.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Form;
use serde::Deserialize;

use super::login::signed_in;
use super::{
    anonymous_csrf, check_anonymous_csrf, error_page, message_page, render, see_other, with_cookie, Area, Layout,
};
use crate::app::App;
use crate::web::Remote;

#[derive(Template)]
#[template(path = "enrolment_link.html")]
struct EnrolmentLinkPage {
    layout: Layout,
    error: Option<String>,
    notice: Option<String>,
    csrf: String,
    token: String,
    username: String,
    application: String,
}

pub async fn link_page(State(app): State<App>, Path(token): Path<String>, headers: HeaderMap) -> Response {
    let area = Area::of::<false>();
    let (account, application) = match app.enrolment_link_for(&token).await {
        Ok(Some(found)) => found,
        Ok(None) => return unusable(&app),
        Err(error) => return error_page(&app, area, None, error),
    };
    let (csrf, cookie) = match anonymous_csrf(&app, &headers) {
        Ok(found) => found,
        Err(error) => return error_page(&app, area, None, error),
    };
    let page = EnrolmentLinkPage {
        layout: Layout::new(
            &app,
            Area { kind: account.kind },
            "Set up Two-Factor Authentication",
            None,
        ),
        error: None,
        notice: None,
        csrf,
        token,
        username: account.username,
        application,
    };
    with_cookie(render(StatusCode::OK, page), cookie)
}

fn unusable(app: &App) -> Response {
    message_page(
        app,
        Area::of::<false>(),
        None,
        StatusCode::NOT_FOUND,
        "Enrolment link",
        Some(
            "This enrolment link cannot be used: it was used already, it expired, or it never existed. \
             Ask the application that sent you here for a new one."
                .into(),
        ),
        None,
    )
}

#[derive(Deserialize)]
pub struct LinkForm {
    csrf: String,
}

/// "Set up": uses the link (once) and opens a session that may only enrol.
pub async fn use_link(
    State(app): State<App>,
    Path(token): Path<String>,
    Remote(remote): Remote,
    headers: HeaderMap,
    Form(form): Form<LinkForm>,
) -> Response {
    let area = Area::of::<false>();
    if let Err(error) = check_anonymous_csrf(&app, &headers, &form.csrf) {
        return error_page(&app, area, None, error);
    }
    match app.use_enrolment_link(&token, remote.as_deref()).await {
        Ok((session_token, account)) => {
            let area = Area { kind: account.kind };
            signed_in(&app, see_other(&area.path("/account")), &session_token)
        }
        Err(crate::services::Error::NotFound(_)) => unusable(&app),
        Err(error) => error_page(&app, area, None, error),
    }
}
