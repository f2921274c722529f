package ai.segserve.plugins;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import org.pytorch.serve.servingsdk.Context;
import org.pytorch.serve.servingsdk.ModelServerEndpoint;
import org.pytorch.serve.servingsdk.http.Request;
import org.pytorch.serve.servingsdk.http.Response;

/**
 * A read-only endpoint answering JSON. PUT, POST and DELETE get 405 instead of the SDK default (an exception that
 * TorchServe turns into a 500). HEAD never reaches a plugin: TorchServe answers it with 500 itself.
 *
 * <p>Subclasses must not call {@code Request.getContentType()}: it throws on a request without a Content-Type header,
 * which is what a health check sends.
 */
abstract class JsonGetEndpoint extends ModelServerEndpoint {

    @Override
    public final void doPut(Request request, Response response, Context context) throws IOException {
        methodNotAllowed(response);
    }

    @Override
    public final void doPost(Request request, Response response, Context context) throws IOException {
        methodNotAllowed(response);
    }

    @Override
    public final void doDelete(Request request, Response response, Context context) throws IOException {
        methodNotAllowed(response);
    }

    static void sendJson(Response response, int status, String json) throws IOException {
        response.setStatus(status);
        response.setContentType("application/json");
        OutputStream body = response.getOutputStream();
        body.write(json.getBytes(StandardCharsets.UTF_8));
        body.flush();
    }

    private static void methodNotAllowed(Response response) throws IOException {
        response.setHeader("Allow", "GET");
        sendJson(response, 405, "{\"error\": \"method not allowed, use GET\"}");
    }
}
