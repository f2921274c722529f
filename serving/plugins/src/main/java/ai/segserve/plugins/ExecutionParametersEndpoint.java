package ai.segserve.plugins;

import java.io.IOException;
import java.util.List;
import java.util.Locale;
import org.pytorch.serve.servingsdk.Context;
import org.pytorch.serve.servingsdk.Model;
import org.pytorch.serve.servingsdk.annotations.Endpoint;
import org.pytorch.serve.servingsdk.annotations.helpers.EndpointTypes;
import org.pytorch.serve.servingsdk.http.Request;
import org.pytorch.serve.servingsdk.http.Response;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * {@code GET /execution-parameters}, which SageMaker batch transform may call to size a job:
 * {@code {"MaxConcurrentTransforms": n, "BatchStrategy": "MULTI_RECORD"|"SINGLE_RECORD", "MaxPayloadInMB": n}}.
 *
 * <p>Each value comes from its environment variable when that holds a valid value, else from its default (an
 * invalid value is logged and ignored, never an error):
 *
 * <ul>
 *   <li>{@code SAGEMAKER_MAX_CONCURRENT_TRANSFORMS}, a positive integer. Default: the number of workers of the entry
 *       model, the first name in {@code SEGSERVE_REQUIRED_MODELS} (the router), because a router worker blocks while
 *       it forwards one request, so more requests in flight than router workers only queue. 1 when that model is
 *       unknown or has no workers.
 *   <li>{@code SAGEMAKER_BATCH_STRATEGY}, MULTI_RECORD or SINGLE_RECORD (any case). Default MULTI_RECORD.
 *   <li>{@code SAGEMAKER_MAX_PAYLOAD_IN_MB}, an integer from 1 to 100 (SageMaker's batch limit). Default 6.
 * </ul>
 *
 * <p>TorchServe refuses requests above {@code max_request_size} (default 6553500 bytes, 6.25 MiB): raise it to at
 * least MaxPayloadInMB MiB when the payload is raised.
 */
@Endpoint(
        urlPattern = "execution-parameters",
        endpointType = EndpointTypes.INFERENCE,
        description = "SageMaker batch transform execution parameters, from SAGEMAKER_* environment variables")
public final class ExecutionParametersEndpoint extends JsonGetEndpoint {

    static final String CONCURRENCY_ENV = "SAGEMAKER_MAX_CONCURRENT_TRANSFORMS";
    static final String STRATEGY_ENV = "SAGEMAKER_BATCH_STRATEGY";
    static final String PAYLOAD_ENV = "SAGEMAKER_MAX_PAYLOAD_IN_MB";

    static final String DEFAULT_STRATEGY = "MULTI_RECORD";
    static final int DEFAULT_PAYLOAD_IN_MB = 6;
    static final int MAX_PAYLOAD_IN_MB = 100;

    private static final Logger LOG = LoggerFactory.getLogger(ExecutionParametersEndpoint.class);

    @Override
    public void doGet(Request request, Response response, Context context) throws IOException {
        Integer concurrency = intFromEnv(CONCURRENCY_ENV, 1, Integer.MAX_VALUE);
        if (concurrency == null) {
            concurrency = entryModelWorkers(context);
        }
        Integer payload = intFromEnv(PAYLOAD_ENV, 1, MAX_PAYLOAD_IN_MB);
        String body = "{\"MaxConcurrentTransforms\": " + concurrency
                + ", \"BatchStrategy\": " + Json.quote(strategyFromEnv())
                + ", \"MaxPayloadInMB\": " + (payload == null ? DEFAULT_PAYLOAD_IN_MB : payload) + "}";
        sendJson(response, 200, body);
    }

    /** The variable's value when it is an integer in [min, max]; null when unset or invalid. */
    private static Integer intFromEnv(String name, int min, int max) {
        String raw = System.getenv(name);
        if (raw == null || raw.trim().isEmpty()) {
            return null;
        }
        try {
            int value = Integer.parseInt(raw.trim());
            if (value >= min && value <= max) {
                return value;
            }
        } catch (NumberFormatException e) {
            // reported below like an out-of-range value
        }
        LOG.warn("Ignoring {}={}: expected an integer from {} to {}; using the default", name, Json.quote(raw), min, max);
        return null;
    }

    private static String strategyFromEnv() {
        String raw = System.getenv(STRATEGY_ENV);
        if (raw == null || raw.trim().isEmpty()) {
            return DEFAULT_STRATEGY;
        }
        String value = raw.trim().toUpperCase(Locale.ROOT);
        if (value.equals("MULTI_RECORD") || value.equals("SINGLE_RECORD")) {
            return value;
        }
        LOG.warn("Ignoring {}={}: expected MULTI_RECORD or SINGLE_RECORD; using {}",
                STRATEGY_ENV, Json.quote(raw), DEFAULT_STRATEGY);
        return DEFAULT_STRATEGY;
    }

    /** Workers of the first model in SEGSERVE_REQUIRED_MODELS; 1 when there is no such model or on any error. */
    private static int entryModelWorkers(Context context) {
        try {
            List<String> required = RequiredModels.fromEnvironment();
            if (required.isEmpty()) {
                return 1;
            }
            Model entry = context.getModels().get(required.get(0));
            return entry == null ? 1 : Math.max(1, entry.getModelWorkers().size());
        } catch (RuntimeException | LinkageError e) {
            LOG.error("Could not count the entry model's workers; MaxConcurrentTransforms falls back to 1", e);
            return 1;
        }
    }
}
