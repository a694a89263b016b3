// The JP PINT gate's worker: OpenPeppol's compiled Schematron (the stylesheets named on the
// command line, unmodified) on Saxon-HE in one long-lived JVM, so the stylesheets are
// compiled once and run JIT-compiled. The hub (pipelines/invoices/gate.py) starts it and
// talks to it over stdin/stdout in frames: a 4-byte big-endian length, then that many bytes
// of UTF-8.
//
//   worker -> hub, once, after compiling:  "ready\t<Saxon version>"
//   hub -> worker, per invoice:            the invoice XML (its text; any encoding named in
//                                           its declaration is ignored: it is read as text)
//   worker -> hub, per invoice:            "ok", then one line per failed assertion:
//                                           flag TAB id TAB location TAB text
//                                           or "unevaluable\t<message>" when a stylesheet
//                                           could not evaluate the document
//
// Only failed assertions are sent (the SVRL report is never serialised). Tabs, carriage
// returns and newlines inside a field become spaces; the hub normalises whitespace.
// The document is parsed with DOCTYPE declarations refused: no DTD, no entity, no fetch.
// End of input ends the worker.

import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.EOFException;
import java.io.File;
import java.io.IOException;
import java.io.StringReader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import javax.xml.parsers.SAXParserFactory;
import javax.xml.transform.sax.SAXSource;
import javax.xml.transform.stream.StreamSource;
import net.sf.saxon.s9api.DocumentBuilder;
import net.sf.saxon.s9api.Processor;
import net.sf.saxon.s9api.SaxonApiException;
import net.sf.saxon.s9api.XdmDestination;
import net.sf.saxon.s9api.XdmNode;
import net.sf.saxon.s9api.XsltCompiler;
import net.sf.saxon.s9api.XsltTransformer;
import net.sf.saxon.s9api.streams.Steps;
import org.xml.sax.InputSource;
import org.xml.sax.XMLReader;

public final class GateWorker {
    private static final String SVRL = "http://purl.oclc.org/dsdl/svrl";

    private GateWorker() {
    }

    private static String field(String value) {
        if (value == null) {
            return "";
        }
        return value.replace('\t', ' ').replace('\r', ' ').replace('\n', ' ');
    }

    private static XMLReader hardenedReader() throws Exception {
        SAXParserFactory factory = SAXParserFactory.newInstance();
        factory.setNamespaceAware(true);
        factory.setFeature("http://apache.org/xml/features/disallow-doctype-decl", true);
        factory.setFeature("http://xml.org/sax/features/external-general-entities", false);
        factory.setFeature("http://xml.org/sax/features/external-parameter-entities", false);
        return factory.newSAXParser().getXMLReader();
    }

    private static void send(DataOutputStream out, String text) throws IOException {
        byte[] bytes = text.getBytes(StandardCharsets.UTF_8);
        out.writeInt(bytes.length);
        out.write(bytes);
        out.flush();
    }

    public static void main(String[] args) throws Exception {
        Processor processor = new Processor(false);
        XsltCompiler compiler = processor.newXsltCompiler();
        List<XsltTransformer> transformers = new ArrayList<>();
        for (String path : args) {
            transformers.add(compiler.compile(new StreamSource(new File(path))).load());
        }
        DocumentBuilder builder = processor.newDocumentBuilder();
        XMLReader reader = hardenedReader();
        DataInputStream in = new DataInputStream(new BufferedInputStream(System.in, 1 << 16));
        DataOutputStream out = new DataOutputStream(new BufferedOutputStream(System.out, 1 << 16));
        send(out, "ready\t" + processor.getSaxonProductVersion());
        while (true) {
            int length;
            try {
                length = in.readInt();
            } catch (EOFException end) {
                return;
            }
            byte[] bytes = new byte[length];
            in.readFully(bytes);
            String xml = new String(bytes, StandardCharsets.UTF_8);
            StringBuilder answer = new StringBuilder("ok");
            try {
                XdmNode document = builder.build(
                    new SAXSource(reader, new InputSource(new StringReader(xml))));
                for (XsltTransformer transformer : transformers) {
                    XdmDestination report = new XdmDestination();
                    transformer.setInitialContextNode(document);
                    transformer.setDestination(report);
                    transformer.transform();
                    for (XdmNode failed : report.getXdmNode()
                            .select(Steps.descendant(SVRL, "failed-assert")).asListOfNodes()) {
                        answer.append('\n').append(field(failed.getAttributeValue(
                                new net.sf.saxon.s9api.QName("flag"))))
                            .append('\t').append(field(failed.getAttributeValue(
                                new net.sf.saxon.s9api.QName("id"))))
                            .append('\t').append(field(failed.getAttributeValue(
                                new net.sf.saxon.s9api.QName("location"))))
                            .append('\t').append(field(failed.getStringValue()));
                    }
                }
            } catch (SaxonApiException | RuntimeException | StackOverflowError failure) {
                String message = failure.getMessage();
                answer = new StringBuilder("unevaluable\t")
                    .append(field(message == null ? failure.getClass().getName() : message));
            }
            send(out, answer.toString());
        }
    }
}
