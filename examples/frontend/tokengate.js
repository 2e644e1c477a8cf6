// tokengate.js: a dependency-free fetch wrapper for apps behind tokengate.
//
// It sends the access token, adopts the new one tokengate returns in
// X-Access-Token after an inline refresh, keeps the job token of each job it
// starts and uses it when polling that job's status. The refresh token stays
// in tokengate's HttpOnly cookie: this code never sees it.
//
//   import { TokengateClient } from "./tokengate.js";
//   const api = new TokengateClient({ baseURL: "" });
//   await api.login("/auth/verify-otp", { email, otp });
//   const { jobId } = await api.startJob("/leasing/renewals/sync");
//   const status = await api.pollJob(`/leasing/renewals/sync/${jobId}`, jobId);

export class TokengateClient {
  constructor({
    baseURL = "",
    accessTokenHeader = "X-Access-Token",
    jobTokenHeader = "X-Job-Token",
    tokenField = "access_token",
    jobIdField = "jobId",
    storage = null, // e.g. window.sessionStorage, to survive reloads
    onUnauthorized = null, // called with the Response of a 401
  } = {}) {
    Object.assign(this, { baseURL, accessTokenHeader, jobTokenHeader, tokenField, jobIdField, storage, onUnauthorized });
    this.accessToken = storage?.getItem("tokengate.access") ?? null;
    this.jobTokens = new Map(JSON.parse(storage?.getItem("tokengate.jobs") ?? "[]"));
    this.stats = { requests: 0, unauthorized: 0, adopted: 0 };
  }

  _save() {
    if (!this.storage) return;
    if (this.accessToken) this.storage.setItem("tokengate.access", this.accessToken);
    this.storage.setItem("tokengate.jobs", JSON.stringify([...this.jobTokens]));
  }

  // fetch sends a request with the access token (and the refresh cookie,
  // same origin), and adopts a token refreshed in flight.
  async fetch(path, init = {}) {
    const headers = new Headers(init.headers || {});
    if (this.accessToken && !headers.has("Authorization")) {
      headers.set("Authorization", `Bearer ${this.accessToken}`);
    }
    this.stats.requests++;
    const res = await fetch(this.baseURL + path, { credentials: "include", ...init, headers });
    const fresh = res.headers.get(this.accessTokenHeader);
    if (fresh) {
      this.accessToken = fresh;
      this.stats.adopted++;
      this._save();
    }
    if (res.status === 401) {
      this.stats.unauthorized++;
      if (this.onUnauthorized) this.onUnauthorized(res);
    }
    return res;
  }

  async json(path, init = {}) {
    const res = await this.fetch(path, init);
    const body = await res.json().catch(() => null);
    if (!res.ok) {
      const err = new Error(`${res.status} ${body?.reason || body?.message || res.statusText}`);
      err.status = res.status;
      err.body = body;
      throw err;
    }
    return body;
  }

  // login posts credentials to the API's login route; tokengate sets the
  // refresh cookie on the same answer.
  async login(path, credentials) {
    const body = await this.json(path, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(credentials),
    });
    this.accessToken = body[this.tokenField];
    this._save();
    return body;
  }

  // startJob posts to a job-start route and keeps the job token for the id.
  async startJob(path, payload) {
    const res = await this.fetch(path, {
      method: "POST",
      headers: payload ? { "Content-Type": "application/json" } : {},
      body: payload ? JSON.stringify(payload) : undefined,
    });
    const body = await res.json();
    if (!res.ok) throw Object.assign(new Error(`${res.status}`), { status: res.status, body });
    const jobToken = res.headers.get(this.jobTokenHeader);
    if (jobToken) {
      this.jobTokens.set(String(body[this.jobIdField]), jobToken);
      this._save();
    }
    return body;
  }

  // pollJob reads a job's status with its job token (valid for the job's
  // life, whatever happens to the access token).
  pollJob(path, jobId) {
    const token = this.jobTokens.get(String(jobId));
    return this.json(path, { headers: token ? { [this.jobTokenHeader]: token } : {} });
  }

  // refresh asks tokengate for a new access token with the refresh cookie.
  async refresh(path = "/auth/refresh") {
    const body = await this.json(path, { method: "POST" });
    this.accessToken = body.access_token;
    this._save();
    return body;
  }

  async logout(path = "/auth/logout") {
    await this.fetch(path, { method: "POST" });
    this.accessToken = null;
    this.jobTokens.clear();
    this.storage?.removeItem("tokengate.access");
    this.storage?.removeItem("tokengate.jobs");
  }
}
