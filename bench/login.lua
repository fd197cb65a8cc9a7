-- POST /token/login/ with the benchmark user's credentials (bench/run.py creates the user).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"username":"bench","password":"correct horse battery staple"}'
