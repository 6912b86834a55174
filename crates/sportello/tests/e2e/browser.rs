//! A browser-like client for the page tests: keeps its cookies, does not follow
//! redirects, posts forms (url-encoded or multipart) and signs in as a person would.

use reqwest::multipart::Form;

use crate::harness::Install;

/// A browser-like client that does not follow redirects and keeps its own cookies.
pub(crate) struct Browser {
    client: reqwest::Client,
    base: String,
    cookies: Vec<(String, String)>,
}

/// What a page answered.
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) location: String,
    pub(crate) body: String,
    pub(crate) csp: String,
}

impl Browser {
    pub(crate) fn new(install: &Install) -> Browser {
        Browser {
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: install.base(),
            cookies: Vec::new(),
        }
    }

    /// A browser of the site at `base` (a proxy in front of several instances).
    pub(crate) fn at(base: &str) -> Browser {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Browser::with_client(client, base)
    }

    /// A browser using `client` (e.g. bound to another local address).
    pub(crate) fn with_client(client: reqwest::Client, base: &str) -> Browser {
        Browser {
            client,
            base: base.to_owned(),
            cookies: Vec::new(),
        }
    }

    /// The same cookies sent to another address (another instance of the site).
    pub(crate) fn set_base(&mut self, base: &str) {
        base.clone_into(&mut self.base);
    }

    pub(crate) fn cookie(&self, name: &str) -> Option<String> {
        self.cookies
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }

    pub(crate) async fn send(&mut self, req: reqwest::RequestBuilder) -> Answer {
        let header = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let resp = req.header("cookie", header).send().await.unwrap();
        for value in resp.headers().get_all("set-cookie") {
            let text = value.to_str().unwrap();
            let (pair, attrs) = text.split_once(';').unwrap_or((text, ""));
            let (k, v) = pair.split_once('=').unwrap();
            self.cookies.retain(|(name, _)| name != k);
            if !attrs.contains("Max-Age=0") {
                self.cookies.push((k.to_owned(), v.to_owned()));
            }
        }
        Answer {
            status: resp.status().as_u16(),
            location: resp
                .headers()
                .get("location")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default(),
            csp: resp
                .headers()
                .get("content-security-policy")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default(),
            body: resp.text().await.unwrap(),
        }
    }

    pub(crate) async fn get(&mut self, path: &str) -> Answer {
        let req = self.client.get(format!("{}{path}", self.base));
        self.send(req).await
    }

    pub(crate) async fn post_form(&mut self, path: &str, form: &[(&str, &str)]) -> Answer {
        let encode = |s: &str| {
            s.bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                        (b as char).to_string()
                    }
                    _ => format!("%{b:02X}"),
                })
                .collect::<String>()
        };
        let body = form
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let req = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        self.send(req).await
    }

    /// Signs in through the form, as a person would; the answer of the form.
    pub(crate) async fn sign_in(&mut self, login: &str, password: &str) -> Answer {
        let page = self.get("/ufficio/login").await;
        let csrf = csrf_of(&page.body);
        self.post_form(
            "/ufficio/login",
            &[("login", login), ("password", password), ("csrf", &csrf)],
        )
        .await
    }

    /// A browser signed in as `login`, and the session's CSRF token for its forms.
    pub(crate) async fn signed_in(
        install: &Install,
        login: &str,
        password: &str,
    ) -> (Browser, String) {
        let mut browser = Browser::new(install);
        let answer = browser.sign_in(login, password).await;
        assert_eq!(answer.status, 303, "{login} signs in: {}", answer.body);
        let mut home = browser.get("/ufficio").await;
        if home.status == 303 {
            home = browser.get(&home.location).await;
        }
        let csrf = csrf_of(&home.body);
        (browser, csrf)
    }

    pub(crate) async fn post_multipart(&mut self, path: &str, form: Form) -> Answer {
        let req = self
            .client
            .post(format!("{}{path}", self.base))
            .multipart(form);
        self.send(req).await
    }
}

/// The value of the hidden `csrf` field of a page's first form.
pub(crate) fn csrf_of(body: &str) -> String {
    let at = body
        .find("name=\"csrf\" value=\"")
        .expect("a form with a CSRF token")
        + 19;
    body[at..at + body[at..].find('"').unwrap()].to_owned()
}
