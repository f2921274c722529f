package ai.segserve.plugins;

import java.io.IOException;
import java.util.List;
import java.util.Map;
import org.pytorch.serve.servingsdk.Context;
import org.pytorch.serve.servingsdk.Model;
import org.pytorch.serve.servingsdk.Worker;
import org.pytorch.serve.servingsdk.annotations.Endpoint;
import org.pytorch.serve.servingsdk.annotations.helpers.EndpointTypes;
import org.pytorch.serve.servingsdk.http.Request;
import org.pytorch.serve.servingsdk.http.Response;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * {@code GET /ping} that is 200 only when every model in {@code SEGSERVE_REQUIRED_MODELS} is registered and has at
 * least one worker whose {@code initialize} has returned (TorchServe's own /ping says 200 before any weights load).
 *
 * <p>Anything else is 503 with the per-model counts, including a missing configuration and any unexpected error:
 * this endpoint never throws. It only reads the frontend's in-memory state, so it answers in milliseconds.
 */
@Endpoint(
        urlPattern = "ping",
        endpointType = EndpointTypes.INFERENCE,
        description = "200 only when every model in SEGSERVE_REQUIRED_MODELS has a loaded worker, else 503")
public final class PingEndpoint extends JsonGetEndpoint {

    private static final Logger LOG = LoggerFactory.getLogger(PingEndpoint.class);

    /** The last verdict, to log changes rather than every poll. Null until the first /ping. */
    private volatile String lastVerdict;

    @Override
    public void doGet(Request request, Response response, Context context) throws IOException {
        int status;
        String body;
        try {
            List<String> required = RequiredModels.fromEnvironment();
            if (required.isEmpty()) {
                status = 503;
                body = unhealthy(RequiredModels.ENV_VAR
                        + " is not set: the health check does not know which models to wait for");
            } else {
                StringBuilder models = new StringBuilder();
                boolean healthy = check(required, context.getModels(), models);
                status = healthy ? 200 : 503;
                body = "{\"status\": " + Json.quote(healthy ? "Healthy" : "Unhealthy")
                        + ", \"models\": {" + models + "}}";
            }
        } catch (RuntimeException | LinkageError e) {
            LOG.error("/ping failed; answering 503", e);
            status = 503;
            body = unhealthy("health check failed: " + e.getClass().getName());
        }
        logIfChanged(status, body);
        sendJson(response, status, body);
    }

    /** Appends one JSON member per required model to {@code out}; true when all of them have a loaded worker. */
    private static boolean check(List<String> required, Map<String, Model> registered, StringBuilder out) {
        boolean healthy = true;
        for (String name : required) {
            Model model = registered.get(name);
            int workers = 0;
            int ready = 0;
            if (model != null) {
                for (Worker worker : model.getModelWorkers()) {
                    workers++;
                    if (worker.isRunning()) {
                        ready++;
                    }
                }
            }
            healthy &= ready > 0;
            if (out.length() > 0) {
                out.append(", ");
            }
            out.append(Json.quote(name))
                    .append(": {\"registered\": ").append(model != null)
                    .append(", \"workers\": ").append(workers)
                    .append(", \"ready_workers\": ").append(ready)
                    .append('}');
        }
        return healthy;
    }

    private static String unhealthy(String error) {
        return "{\"status\": \"Unhealthy\", \"error\": " + Json.quote(error) + ", \"models\": {}}";
    }

    private void logIfChanged(int status, String body) {
        String verdict = status + " " + body;
        if (!verdict.equals(lastVerdict)) {
            lastVerdict = verdict;
            LOG.info("/ping now {}", verdict);
        }
    }
}
